"""Step `distil-corpus`: the selected teacher combination applied to teacher-labelled documents,
the student's training corpus (corpus/distilled/{train,dev}.spacy; dev: a fixed share of documents
held out by hash of their id, teacher labels only) and reports/distilled_corpus.{json,md}."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spacy.tokens import Doc, DocBin

from ..corpora.stats import CorpusStats
from ..labels import GOLD_SPANS_KEY, LABELS
from ..reports import write_report
from .inputs import load_docs, read_calibration
from .partial import INCORRECT_SPANS_KEY, PartialRule, Vetoes, apply_partial_labels, dropped_terms
from .strategies import combine


def is_dev(doc_id: str, dev_percent: int, salt: str = "clin-distill-dev") -> bool:
    """Deterministic document-level hold-out by hash of the document id."""
    return int(hashlib.sha256(f"{salt}:{doc_id}".encode()).hexdigest(), 16) % 100 < dev_percent


def distil_docs(
    docs: Iterable[Doc],
    selected: dict[str, dict[str, Any]],
    weights: dict[str, dict[str, float]],
    rule: PartialRule | None = None,
    teachers: Sequence[str] = (),
    drops: dict[str, set[str]] | None = None,
) -> Iterable[Doc]:
    """Replace `doc.ents` with the merged teacher labels, with the partial-label `rule`'s missing
    tokens and incorrect spans when one is given; the gold span group is removed, so no human
    label reaches the student's training data.
    """
    choice = {label: (s["subset"], s["strategy"]) for label, s in selected.items()}
    docs = list(docs)
    vetoes = Vetoes(docs[0].vocab, drops or {}) if docs and rule else None
    for doc, ents in zip(docs, combine(docs, choice, weights), strict=True):
        if rule is None:
            doc.ents = ents
        else:
            missing, incorrect = rule(doc, ents, teachers, vetoes(doc))
            apply_partial_labels(doc, ents, missing, incorrect)
        if GOLD_SPANS_KEY in doc.spans:
            del doc.spans[GOLD_SPANS_KEY]
        yield doc


def corpus_stats(docs: Sequence[Doc]) -> dict[str, Any]:
    """Docs, words and entities per label, counted as the corpus step counts them, plus the
    partial labels: tokens left missing and spans marked incorrect."""
    stats = CorpusStats()
    for doc in docs:
        stats.add_doc(doc)
    out = {k: v for k, v in stats.to_dict().items() if k in ("docs", "words", "entities")}
    out["missing_tokens"] = sum(t.ent_iob == 0 for doc in docs for t in doc)
    out["incorrect_spans"] = sum(len(doc.spans.get(INCORRECT_SPANS_KEY, [])) for doc in docs)
    return out


def write_distilled_corpus(
    labelled_dir: Path,
    combinations: Path,
    out_dir: Path,
    report: Path,
    sources: Sequence[str],
    dev_percent: int,
    llm_dir: Path | None = None,
    calibration: Path | None = None,
    rule: PartialRule | None = None,
) -> dict[str, Any]:
    """Merge each source's teacher labels with the selected combination (and the partial-label
    `rule`), split train/dev by hash of `<source>:<doc_id>`, write both DocBins and the report;
    returns the report's data."""
    combo = json.loads(combinations.read_text())
    table = read_calibration(calibration)
    drops = dropped_terms(table)
    split: dict[str, list] = {"train": [], "dev": []}
    per_source = {}
    for name in sources:
        docs = load_docs(labelled_dir, name, llm_dir, table)
        merged = list(distil_docs(docs, combo["selected"], combo["weights"], rule, combo["teachers"], drops))
        for doc in merged:
            doc.user_data.setdefault("source", name)
            split["dev" if is_dev(f"{name}:{doc.user_data['doc_id']}", dev_percent) else "train"].append(doc)
        per_source[name] = corpus_stats(merged)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, docs in split.items():
        DocBin(docs=docs, store_user_data=True).to_disk(out_dir / f"{name}.spacy")
    stats = {
        "selected": combo["selected"],
        "sources": per_source,
        **{k: corpus_stats(v) for k, v in split.items()},
    }
    parts = [
        *((f"source {k}", v) for k, v in per_source.items()),
        ("**train**", stats["train"]),
        ("**dev**", stats["dev"]),
    ]
    rows = [
        [
            part,
            f"{s['docs']:,}",
            f"{s['words']:,}",
            *(f"{s['entities'][label]:,}" for label in LABELS),
            f"{s['missing_tokens']:,}",
            f"{s['incorrect_spans']:,}",
        ]
        for part, s in parts
    ]
    intro = (
        "Written by `weasel run distil-corpus`: teacher labels merged with the combination selected in\n"
        "`reports/combinations.md`; no human label is used. Missing: tokens the student's loss ignores;\n"
        "incorrect: spans it is told are wrong (the partial-label rule of configs/distil.cfg)."
    )
    header = ["part", "docs", "words", *LABELS, "missing tokens", "incorrect spans"]
    write_report(report, stats, "Distilled training corpus", intro, header, rows)
    return stats
