"""The benchmark's ceiling must time exactly what the student's transformer computes: same
windows, same wordpieces, same padded batches (checked by recording the encoder's inputs)."""

from __future__ import annotations

import json

import spacy
from spacy.tokens import DocBin

from clin_distill.speed import encoder_batches


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


def test_benchmark_report_has_the_agreed_shape(workflow_project):
    report = json.loads((workflow_project / "reports/benchmark.json").read_text())
    for key in ("words_per_second", "notes_per_second", "peak_rss_mb"):
        assert report["student"][key] > 0
    assert report["ceiling"]["words_per_second"] > 0
    assert 0 < report["ratio_to_ceiling"] <= 1.2
    assert {"rxnorm", "snomed", "smollm2"} <= set(report["teachers"])
    assert {"student_cpu", "gpt-4o", "o1-mini", "gemini-flash"} <= set(report["cost_per_1k_notes_usd"])
