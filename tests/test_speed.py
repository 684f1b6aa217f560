"""The benchmark's ceiling must time exactly what the student's transformer computes: same
windows, same wordpieces, same padded batches (checked by recording the encoder's inputs); the
transformer's inference path must compute what spacy-transformers' own forward does; the opt-in
int8 encoder must keep the student's entities and never be written to disk; the bf16 encoder that
`clin_encoder_precision` picks on CPUs with native bf16, and the ONNX Runtime encoders it picks
elsewhere, must give the float student's entities; `clin_memory` caps oneDNN's cache and trims the
heap only when its settings say so, and the packaged model sets them as the committed benchmark
measured them; its tokenizer, whose chunk cache is kept filled, gives spaCy's own tokens."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import DocBin
from spacy_transformers.layers import transformer_model
from test_windows import TAIL, odd_note, student
from thinc.api import NumpyOps

from clin_distill.bench.cpu import precision_ceilings
from clin_distill.bench.speed import (
    benchmark_notes,
    encoder_batches,
    speedup_in_turns,
    stage_shares,
    student_and_ceiling,
    varied_notes,
)
from clin_distill.packaging import INFERENCE_PIPES, inference_pipeline
from clin_distill.student.int8 import QuantizedEncoderError, quantize_encoder
from clin_distill.student.memory import IDEEP_CACHE_ENV, ONEDNN_CACHE_ENV
from clin_distill.student.precision import OneThreadBlasOps, cpu_has_bf16
from clin_distill.student.tokenizer import TOKENIZER, ChunkCachedTokenizer
from clin_distill.student.windows import encode
from conftest import SMALL_PROFILE


def test_ceiling_batches_are_the_students_own(workflow_project):
    nlp = spacy.load(workflow_project / "training/distilled/model-best")
    docs = DocBin().from_disk(workflow_project / "corpus/unlabelled/aci_bench.spacy").get_docs(nlp.vocab)
    texts = [d.text for d, _ in zip(docs, range(40), strict=False)]
    seen = []
    encoder = nlp.get_pipe("transformer").model.transformer
    hook = encoder.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        list(nlp.pipe(texts, batch_size=16))
    finally:
        hook.remove()
    batches, words = encoder_batches(nlp, texts, batch_size=16)
    assert [tuple(b["input_ids"].shape) for b in batches] == seen
    assert words > 0


def test_student_and_its_ceiling_are_timed_in_turns_and_the_ceiling_leaves_the_student_as_it_was(
    workflow_project,
):
    nlp = spacy.load(workflow_project / "training/distilled/model-best")
    docs = DocBin().from_disk(workflow_project / "corpus/unlabelled/aci_bench.spacy").get_docs(nlp.vocab)
    texts = [d.text for d, _ in zip(docs, range(12), strict=False)]
    before = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    student, ceiling, peak = student_and_ceiling(nlp, texts, batch_size=1, rounds=2)
    assert student["batch_size"] == ceiling["batch_size"] == 1
    assert student["words_per_second"] > 0 and ceiling["words_per_second"] > 0
    assert ceiling["transformer_batches"] == len(texts)
    # the encoder inside the pipeline is timed in the student's turns only (the bare encoder's
    # calls go through the same PyTorch module), then the module's own forward is back
    assert 0 < student["encoder_seconds_in_pipeline"] < student["seconds"]
    assert student["outside_encoder_ms_per_note"] > 0
    assert "forward" not in vars(nlp.get_pipe("transformer").model.transformer)
    assert peak is None or peak > 0
    paired = speedup_in_turns(nlp, nlp, texts, batch_size=1, rounds=2)
    assert paired["words_per_second"] > 0 and paired["baseline_words_per_second"] > 0
    assert paired["speedup"] == round(paired["words_per_second"] / paired["baseline_words_per_second"], 2)
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)] == before


def test_stage_shares_time_every_stage_once_and_leave_the_encoder_as_it_was(workflow_project):
    """The PyTorch encoder's forward and the ONNX Runtime runner are each timed, then restored."""
    nlp = spacy.load(workflow_project / "training/distilled/model-best")
    docs = DocBin().from_disk(workflow_project / "corpus/unlabelled/aci_bench.spacy").get_docs(nlp.vocab)
    texts = [d.text for d, _ in zip(docs, range(6), strict=False)]
    trf = nlp.get_pipe("transformer").model
    for runner in (None, "onnx-float32"):
        if runner:
            settings = {"precision": runner, "pipe": "transformer"}
            nlp.add_pipe("clin_encoder_precision", first=True, config=settings)
            nlp.get_pipe("clin_encoder_precision").apply()
        before = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
        shares = stage_shares(nlp, texts)
        stages = {k: v for k, v in shares.items() if k != "seconds"}
        named = {"encoder_forward", "spacy_tokenizer", "transformer_outside_encoder"}
        assert set(stages) == named | (set(nlp.pipe_names) - {"transformer"})
        assert abs(sum(stages.values()) - 1) < 0.01 and stages["encoder_forward"] > 0.1
        assert "forward" not in vars(trf.transformer)  # the module's own forward again
        assert [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)] == before


def test_each_variant_is_held_to_its_precisions_fastest_ceiling_the_defaults_included():
    data = {
        "student_int8": {"precision": "int8", "words_per_second": 8000,
                         "own_runtime_ceiling_words_per_second": 10000},
        "student_float32": {"precision": "float32", "words_per_second": 6000,
                            "own_runtime_ceiling_words_per_second": 7000},
        "student_onnx-float32": {"precision": "float32", "words_per_second": 7500,
                                 "own_runtime_ceiling_words_per_second": 9000},
    }  # fmt: skip
    # the default (onnx-int8, not a variant row) ran int8 fastest
    precision_ceilings(data, ["int8", "float32", "onnx-float32"], {"onnx-int8": 14000})
    assert (data["student_int8"]["ceiling_words_per_second"], data["student_int8"]["ceiling_from"]) == (
        14000,
        "onnx-int8",
    )
    assert data["student_int8"]["ratio_to_ceiling"] == round(8000 / 14000, 3)
    for key in ("student_float32", "student_onnx-float32"):
        assert (data[key]["ceiling_words_per_second"], data[key]["ceiling_from"]) == (9000, "onnx-float32")


@pytest.mark.full
def test_benchmark_report_has_the_agreed_shape(workflow_project):
    report = json.loads((workflow_project / "reports/benchmark.json").read_text())
    for key in ("words_per_second", "notes_per_second", "peak_rss_mb"):
        assert report["student"][key] > 0
    assert report["ceiling"]["words_per_second"] > 0
    assert 0 < report["ratio_to_ceiling"] <= 1.2
    assert "smollm2" in report["teachers"] and len(report["teachers"]) >= 9
    assert {"student_cpu", "gpt-4o", "o1-mini", "gemini-flash"} <= set(report["cost_per_1k_notes_usd"])
    native = report["machine"]["native_bf16"]
    assert report["student"]["precision"] == "onnx-int8"  # "auto" on every CPU
    variants = [f"student_{v}" for v in ("float32", "onnx-float32", "int8", *(("bf16",) if native else ()))]
    for key in variants:
        q = report[key]
        assert q["words_per_second"] > 0 and 0 < q["ratio_to_ceiling"] <= 1.2
        # held to the fastest runtime of its precision, its own among them
        assert q["ceiling_words_per_second"] >= q["own_runtime_ceiling_words_per_second"]
    if native:  # the default against PyTorch bf16, timed in turns
        assert report["bf16_speedup_in_turns"]["variant"] == "onnx-int8"
        assert report["bf16_speedup_in_turns"]["speedup"] > 0
    assert len(report["teachers"]["smollm2"]["seconds_per_note_by_pass"]) == 2
    trimmed, untrimmed = report["student"]["long_run"], report["student"]["long_run_without_trim"]
    assert trimmed["malloc_trim_every"] > 0 and untrimmed["malloc_trim_every"] == 0
    assert trimmed["notes"] >= untrimmed["notes"] > 300 and trimmed["peak_rss_mb"] > 0
    for key in ("student", *variants):
        assert set(report[key]["maccrobat_test_strict_f1"]) == {"MEDICATION", "DISEASE", "SYMPTOM"}
        assert report[key]["words_per_second"] > 0
    assert report["no_bf16_speedup_in_turns"]["variant"] == "onnx-int8"
    assert report["no_bf16_speedup_in_turns"]["speedup"] > 0
    stages = {k: v for k, v in report["student"]["profile"].items() if k != "seconds"}
    assert abs(sum(stages.values()) - 1) < 0.01 and stages["encoder_forward"] > 0.5


# Either student has the same encoder; the human-label one finds more entities after the small
# profile's short training, and these tests compare entities.
HUMAN = "training/human/model-best"


def _gold_texts(project, n):
    gold = DocBin().from_disk(project / "corpus/gold/maccrobat_test.spacy").get_docs(spacy.blank("en").vocab)
    return [d.text for d, _ in zip(gold, range(n), strict=False)]


def test_bf16_encoder_gives_the_students_entities(workflow_project):
    model = workflow_project / HUMAN
    texts = _gold_texts(workflow_project, 20)
    as_float = [{(e.start, e.end, e.label_) for e in d.ents} for d in spacy.load(model).pipe(texts)]
    nlp = spacy.load(model)
    nlp.add_pipe("clin_encoder_precision", first=True, config={"precision": "bf16"})
    encoder = nlp.get_pipe("transformer").model.transformer
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}  # cast when the first note comes
    docs = list(nlp.pipe(texts))
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}
    assert docs[0]._.trf_data.tensors[0].dtype.name == "float32"  # NumPy has no bf16
    as_bf16 = [{(e.start, e.end, e.label_) for e in d.ents} for d in docs]
    same = sum(len(a & b) for a, b in zip(as_float, as_bf16, strict=True))
    total = sum(len(a) + len(b) for a, b in zip(as_float, as_bf16, strict=True))
    assert total > 30 and 2 * same / total >= 0.95  # measured 0.999 on the packaged student


def test_auto_precision_follows_the_cpu_and_bad_values_are_refused(workflow_project):
    nlp = spacy.load(workflow_project / "training/distilled/model-best")
    pipe = nlp.add_pipe("clin_encoder_precision", first=True)
    assert pipe.apply() == "onnx-int8"  # the default on every CPU (reports/benchmark*.md)
    spelled = nlp.add_pipe(
        "clin_encoder_precision", name="p1", config={"with_bf16": "bf16", "without_bf16": "float32"}
    )
    assert spelled.resolve() == ("bf16" if cpu_has_bf16() else "float32")
    with pytest.raises(ValueError, match="precision must be one of"):
        nlp.add_pipe("clin_encoder_precision", name="p2", config={"precision": "fp8"})
    with pytest.raises(ValueError, match="without_bf16 must be one of"):
        nlp.add_pipe("clin_encoder_precision", name="p3", config={"without_bf16": "auto"})
    with pytest.raises(ValueError, match="with_bf16 must be one of"):
        nlp.add_pipe("clin_encoder_precision", name="p4", config={"with_bf16": "fp8"})


TEXTS = ["Patient on metformin.", "Denies chest pain.", "History of asthma."] * 4


def _glibc_trims(config: dict) -> int:
    """How many times glibc's own malloc_trim ran while a pipeline labelled 10 notes."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("clin_memory", config=config)
    assert pipe._trim is not None  # glibc here
    calls = []
    real_trim = pipe._trim
    pipe._trim = lambda pad: calls.append(real_trim(pad))  # glibc's own call, counted
    list(nlp.pipe(TEXTS[:10], batch_size=1))
    return len(calls)


def test_heap_is_trimmed_when_it_grew_and_bad_values_are_refused():
    # margin 0: at every check, after notes 3, 6 and 9
    assert _glibc_trims({"malloc_trim_every": 3, "malloc_trim_margin_mb": 0}) == 3
    # a margin no 10 notes can grow by: only the first check trims (it sets the baseline)
    assert _glibc_trims({"malloc_trim_every": 3, "malloc_trim_margin_mb": 100_000}) == 1
    off = spacy.blank("en")
    for name, bad, message in (
        ("p1", {"malloc_trim_every": -1}, "malloc_trim_every must be >= 0"),
        ("p2", {"malloc_trim_margin_mb": -1}, "malloc_trim_margin_mb must be >= 0"),
        ("p3", {"onednn_cache": -1}, "onednn_cache must be >= 0"),
        ("p4", {"ideep_cache": -1}, "ideep_cache must be >= 0"),
    ):
        with pytest.raises(ValueError, match=message):
            off.add_pipe("clin_memory", name=name, config=bad)


def test_memory_settings_apply_only_when_configured(monkeypatch):
    monkeypatch.delenv(ONEDNN_CACHE_ENV, raising=False)
    monkeypatch.delenv(IDEEP_CACHE_ENV, raising=False)
    before = dict(os.environ)
    nlp = spacy.blank("en")
    default = nlp.add_pipe("clin_memory")  # the factory's defaults: both off
    off = nlp.add_pipe("clin_memory", name="off", config={"onednn_cache": None, "malloc_trim_every": 0})
    assert default._trim is None and off._trim is None
    list(nlp.pipe(TEXTS))
    assert dict(os.environ) == before
    nlp.add_pipe("clin_memory", name="capped", config={"onednn_cache": 64, "ideep_cache": 16})
    assert os.environ[ONEDNN_CACHE_ENV] == "64" and os.environ[IDEEP_CACHE_ENV] == "16"
    monkeypatch.setenv(ONEDNN_CACHE_ENV, "8")  # the user's own setting wins
    monkeypatch.setenv(IDEEP_CACHE_ENV, "4")
    nlp.add_pipe("clin_memory", name="capped_again", config={"onednn_cache": 64, "ideep_cache": 16})
    assert os.environ[ONEDNN_CACHE_ENV] == "8" and os.environ[IDEEP_CACHE_ENV] == "4"
    # importing the components (as the packaged model's __init__ does) changes nothing either
    env = {k: v for k, v in os.environ.items() if k not in (ONEDNN_CACHE_ENV, IDEEP_CACHE_ENV)}
    code = (
        "import os; before = dict(os.environ);"
        "import clin_distill.student.memory, clin_distill.student.precision;"
        "assert dict(os.environ) == before"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


def test_packaged_pipeline_spells_out_todays_inference_settings(tmp_path, monkeypatch):
    """The settings the committed benchmark measured, written into the packaged config.cfg."""
    monkeypatch.delenv(ONEDNN_CACHE_ENV, raising=False)  # restored afterwards
    monkeypatch.delenv(IDEEP_CACHE_ENV, raising=False)
    assert INFERENCE_PIPES == [
        (
            "clin_encoder_precision",
            {
                "precision": "auto",
                "pipe": "transformer",
                "with_bf16": "onnx-int8",
                "without_bf16": "onnx-int8",
                "numpy_blas": True,
            },
        ),
        (
            "clin_memory",
            {"onednn_cache": 8, "ideep_cache": 16, "malloc_trim_every": 10, "malloc_trim_margin_mb": 64},
        ),
    ]
    trained = spacy.blank("en")
    trained.add_pipe("sentencizer")
    trained.to_disk(tmp_path / "trained")
    inference_pipeline(tmp_path / "trained").to_disk(tmp_path / "packaged")
    config = spacy.util.load_config(tmp_path / "packaged" / "config.cfg")
    assert config["nlp"]["pipeline"] == ["clin_encoder_precision", "clin_memory", "sentencizer"]
    for factory, settings in INFERENCE_PIPES:
        assert config["components"][factory] == {"factory": factory, **settings}
    assert config["nlp"]["tokenizer"] == {"@tokenizers": TOKENIZER}
    packaged = spacy.load(tmp_path / "packaged")
    assert isinstance(packaged.tokenizer, ChunkCachedTokenizer)
    assert packaged.tokenizer.rules == trained.tokenizer.rules  # spaCy's English rules, loaded from disk


def test_ner_head_multiplies_on_one_thread_of_numpys_blas_with_the_same_entities(workflow_project):
    """`numpy_blas`: every thinc layer after the encoder moves off blis; the products and the
    entities stay those of blis, and NumPy's BLAS keeps its own thread count outside them."""
    from threadpoolctl import threadpool_info

    texts = _unlabelled_texts(workflow_project, 20)
    found = {}
    for numpy_blas in (False, True):
        nlp = spacy.load(workflow_project / HUMAN)
        pipe = nlp.add_pipe(
            "clin_encoder_precision", first=True, config={"precision": "float32", "numpy_blas": numpy_blas}
        )
        pipe.apply()
        ops = {type(node.ops) for node in nlp.get_pipe("ner").model.walk()}
        assert ops == ({OneThreadBlasOps} if numpy_blas else {NumpyOps})
        assert pipe.blas_layers == (len(list(nlp.get_pipe("ner").model.walk())) if numpy_blas else 0)
        found[numpy_blas] = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    assert found[True] == found[False] and sum(map(len, found[True])) > 10
    assert isinstance(pickle.loads(pickle.dumps(nlp.get_pipe("ner"))).model.ops, OneThreadBlasOps)
    threads = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    x, w = np.random.default_rng(0).random((330, 384), "f"), np.random.default_rng(1).random((64, 384), "f")
    ours, blis = OneThreadBlasOps().gemm(x, w, trans2=True), NumpyOps().gemm(x, w, trans2=True)
    assert np.allclose(ours, blis, rtol=1e-5)
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == threads


def test_chunk_cached_tokenizer_gives_spacys_tokens_on_real_notes(workflow_project):
    """Same tokens and spaces as spaCy's tokenizer on real notes, special cases ("Dr.", "and/or")
    among them; each chunk is tokenized on its own once; it survives pickling."""
    texts = [d.text for d in benchmark_notes(workflow_project / "corpus/unlabelled", 300)]
    plain = spacy.blank("en")
    cached = spacy.blank("en")
    cached.tokenizer = ChunkCachedTokenizer(cached.tokenizer)
    specials = {c for t in texts for c in t.split() if c in plain.tokenizer.rules}
    assert len(specials) >= 3, specials  # the case spaCy stops caching at (spaCy issue #13950)
    for _ in range(2):  # cold, then from the cache
        for text in texts:
            a, b = plain.make_doc(text), cached.make_doc(text)
            assert [(t.text, t.whitespace_) for t in a] == [(t.text, t.whitespace_) for t in b]
    assert cached.tokenizer.seen == {c for t in texts for c in t.split()}
    again = pickle.loads(pickle.dumps(cached.tokenizer))
    assert [t.text for t in again(texts[0])] == [t.text for t in plain.make_doc(texts[0])]


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not cpu_has_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16(info)
    assert not cpu_has_bf16(tmp_path / "missing")


def test_int8_encoder_keeps_the_students_entities_and_refuses_to_be_saved(workflow_project, tmp_path):
    model = workflow_project / HUMAN
    texts = _gold_texts(workflow_project, 20)
    as_float = [{(e.start, e.end, e.label_) for e in d.ents} for d in spacy.load(model).pipe(texts)]
    nlp = quantize_encoder(spacy.load(model))
    encoder = nlp.get_pipe("transformer").model.transformer
    assert not [m for m in encoder.modules() if type(m) is torch.nn.Linear]  # every Linear is int8 now
    as_int8 = [{(e.start, e.end, e.label_) for e in d.ents} for d in nlp.pipe(texts)]
    same = sum(len(a & b) for a, b in zip(as_float, as_int8, strict=True))
    total = sum(len(a) + len(b) for a, b in zip(as_float, as_int8, strict=True))
    assert total > 30
    # mostly the same entities: measured 0.86-0.90 on the default student; the small profile's
    # 120-step student is less sure of its entities, and int8 moves more of them (0.70 measured at 80 steps)
    assert 2 * same / total >= (0.6 if SMALL_PROFILE else 0.8)
    with pytest.raises(QuantizedEncoderError, match="cannot be saved"):
        nlp.to_disk(tmp_path / "int8")
    assert not (tmp_path / "int8" / "transformer" / "model").exists()


def _unlabelled_texts(project, n):
    docs = DocBin().from_disk(project / "corpus/unlabelled/aci_bench.spacy").get_docs(spacy.blank("en").vocab)
    return [d.text for d, _ in zip(docs, range(n), strict=False)]


def test_inference_path_computes_what_spacy_transformers_forward_does(workflow_project):
    """Same wordpieces, alignment, per-doc split and encoder outputs as the stock forward, batch by
    batch, on real notes and on a note whose window the wordpiece bound splits."""
    nlp = spacy.load(workflow_project / HUMAN)
    trf = nlp.get_pipe("transformer").model
    docs = [nlp.make_doc(t) for t in _unlabelled_texts(workflow_project, 24) + [odd_note(110)]]
    splits = trf.attrs["get_spans"].splits
    for size in (1, 5):
        for i in range(0, len(docs), size):
            batch = docs[i : i + size]
            fast = encode(trf, batch)
            stock, _ = transformer_model.forward(trf, batch, False)
            assert fast.wordpieces.strings == stock.wordpieces.strings
            assert fast.wordpieces.lengths == stock.wordpieces.lengths
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                assert np.array_equal(getattr(fast.wordpieces, key), getattr(stock.wordpieces, key))
            assert np.array_equal(fast.align.data, stock.align.data)
            assert np.array_equal(fast.align.lengths, stock.align.lengths)
            for ours, theirs in zip(fast.doc_data, stock.doc_data, strict=True):
                assert np.array_equal(ours.align.data, theirs.align.data)
                assert np.array_equal(ours.align.lengths, theirs.align.lengths)
                assert set(ours.model_output) == set(theirs.model_output)
                for key, value in theirs.model_output.items():
                    assert np.allclose(ours.model_output[key], value, atol=1e-5)
    assert trf.attrs["get_spans"].splits > splits  # the odd note's window was split on both paths
    # the pipeline runs it: the same entities as with the stock forward put back
    texts = [d.text for d in docs]
    ours = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    fast_forward, trf._func = trf._func, transformer_model.forward
    try:
        theirs = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    finally:
        trf._func = fast_forward
    assert ours == theirs and sum(map(len, ours)) > 0


def test_onnx_runtime_encoders_give_the_float_students_entities_and_save_as_float(workflow_project, tmp_path):
    model = workflow_project / HUMAN
    texts = _gold_texts(workflow_project, 20)
    torch_nlp = spacy.load(model)
    as_float = [{(e.start, e.end, e.label_) for e in d.ents} for d in torch_nlp.pipe(texts)]
    hidden = [d._.trf_data.model_output.last_hidden_state for d in torch_nlp.pipe(texts[:3])]
    agreement = {}
    for precision in ("onnx-float32", "onnx-int8"):
        nlp = spacy.load(model)
        pipe = nlp.add_pipe("clin_encoder_precision", first=True, config={"precision": precision})
        docs = list(nlp.pipe(texts))
        assert pipe.applied == precision
        assert nlp.get_pipe("transformer").model.clin_encoder_runner is not None
        found = [{(e.start, e.end, e.label_) for e in d.ents} for d in docs]
        same = sum(len(a & b) for a, b in zip(as_float, found, strict=True))
        total = sum(len(a) + len(b) for a, b in zip(as_float, found, strict=True))
        assert total > 30
        agreement[precision] = 2 * same / total
        if precision == "onnx-float32":
            for doc, ref in zip(docs[:3], hidden, strict=True):
                # windows run one by one without their padding: the same vectors at every
                # wordpiece, zeros at the padding (which the alignment never reads)
                out = doc._.trf_data.model_output.last_hidden_state
                real = doc._.trf_data.wordpieces.attention_mask.astype(bool)
                assert np.allclose(out[real], ref[real], atol=1e-4)
                assert not out[~real].any()
            assert any(not d._.trf_data.wordpieces.attention_mask.all() for d in docs), "no padded note"
    assert agreement["onnx-float32"] == 1.0
    # int8 moves a few boundaries (on the default student, strict F1 on MACCROBAT test within 0.009
    # of float32: reports/benchmark_no_bf16.md); the small profile's 120-step student is less sure
    assert agreement["onnx-int8"] >= (0.8 if SMALL_PROFILE else 0.9)
    # the PyTorch weights stay float32 and are what is saved
    nlp.to_disk(tmp_path / "saved")
    reloaded = spacy.load(
        tmp_path / "saved", config={"components": {"clin_encoder_precision": {"precision": "float32"}}}
    )
    assert {p.dtype for p in reloaded.get_pipe("transformer").model.transformer.parameters()} == {
        torch.float32
    }
    assert [{(e.start, e.end, e.label_) for e in d.ents} for d in reloaded.pipe(texts)] == as_float


def test_saved_pipeline_ships_the_int8_graph_of_its_weights_and_only_they_use_it(tmp_path, monkeypatch):
    """`clin_encoder_precision` saves the encoder's int8 graph with its weights' fingerprint;
    loading runs it without exporting again (the same outputs as a fresh export); weights that
    changed since get a fresh export, never the stale graph."""
    import clin_distill.student.onnx_encoder as onnx_encoder

    nlp = student()
    nlp.add_pipe("clin_encoder_precision", first=True, config={"precision": "onnx-int8"})
    nlp.to_disk(tmp_path / "saved")
    assert (tmp_path / "saved/clin_encoder_precision/encoder.int8.onnx").stat().st_size > 1_000_000
    texts = [TAIL, odd_note(30)]
    exported = spacy.load(tmp_path / "saved")
    exported.get_pipe("clin_encoder_precision")._shipped = None  # as a model saved before the graph
    expected = [d._.trf_data.model_output.last_hidden_state for d in exported.pipe(texts)]
    assert exported.get_pipe("clin_encoder_precision").graph == "exported"

    def no_export(*args, **kwargs):
        raise AssertionError("exported although the graph was shipped")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_encoder, "export", no_export)
        shipped = spacy.load(tmp_path / "saved")
        got = [d._.trf_data.model_output.last_hidden_state for d in shipped.pipe(texts)]
    assert shipped.get_pipe("clin_encoder_precision").graph == "shipped"
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    changed = spacy.load(tmp_path / "saved")
    with torch.no_grad():
        next(changed.get_pipe("transformer").model.transformer.parameters())[0, 0] += 1.0
    list(changed.pipe(texts))
    assert changed.get_pipe("clin_encoder_precision").graph == "exported"


def test_long_run_notes_are_real_varied_and_as_many_as_asked(workflow_project):
    unlabelled = workflow_project / "corpus/unlabelled"
    n_real = sum(len(DocBin().from_disk(p)) for p in unlabelled.glob("*.spacy"))
    texts = varied_notes(unlabelled, 2 * n_real + 7)
    assert len(texts) == 2 * n_real + 7 and texts == varied_notes(unlabelled, 2 * n_real + 7)
    assert len(set(texts[n_real:])) > 0.9 * (n_real + 7)  # new texts, not the corpus again
    assert len({len(t) for t in texts}) > 0.5 * len(texts)  # of ever new lengths
    assert texts[:n_real] == varied_notes(unlabelled, n_real)
