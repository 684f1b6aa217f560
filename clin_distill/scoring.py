"""Strict and lenient precision/recall/F1 per label, for teachers, combinations and students.

Strict = same tokens and label, counted exactly as spaCy's `Scorer.score_spans` counts
(labelled, overlaps allowed; a test checks the two agree on real data). It is counted here
because the combination search scores about a thousand candidates and building spaCy
`Example`s for each would dominate its run time. Lenient (any overlap with a gold span of the
same label) has no spaCy equivalent. Test-set intervals come from `bootstrap` over per-document
counts, so a resample is a sum of counters, not a re-run of the model.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from spacy.tokens import Doc, Span


def prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> dict[str, float]:
    p = tp_pred / n_pred if n_pred else 0.0
    r = tp_gold / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f": round(f, 4)}


def doc_counts(pred: Iterable[Span], gold: Iterable[Span], labels: Sequence[str]) -> Counter:
    """Counts for one document: per label, strict and lenient hits and totals."""
    c: Counter = Counter()
    for label in labels:
        p = {(s.start, s.end) for s in pred if s.label_ == label}
        g = {(s.start, s.end) for s in gold if s.label_ == label}
        c[label, "tp"] += len(p & g)
        c[label, "np"] += len(p)
        c[label, "ng"] += len(g)
        c[label, "hp"] += sum(any(a < d and c_ < b for c_, d in g) for a, b in p)
        c[label, "hg"] += sum(any(a < d and c_ < b for a, b in p) for c_, d in g)
    return c


def from_counts(c: Counter, labels: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    return {
        label: {
            "strict": prf(c[label, "tp"], c[label, "np"], c[label, "tp"], c[label, "ng"]),
            "lenient": prf(c[label, "hp"], c[label, "np"], c[label, "hg"], c[label, "ng"]),
        }
        for label in labels
    }


def score(
    pairs: Iterable[tuple[Iterable[Span], Doc]], labels: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Score predicted spans against each gold doc's `doc.ents`: `{label: {strict, lenient}}`."""
    return score_spans(((pred, gold_doc.ents) for pred, gold_doc in pairs), labels)


def score_spans(
    pairs: Iterable[tuple[Iterable[Span], Iterable[Span]]], labels: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """`score` with the gold spans given (the search scores each dev doc about a thousand times,
    and `doc.ents` builds its Span objects anew at every read)."""
    total: Counter = Counter()
    for pred, gold in pairs:
        total.update(doc_counts(list(pred), list(gold), labels))
    return from_counts(total, labels)


def bootstrap(
    per_doc: Sequence[Counter], labels: Sequence[str], n: int = 1000, seed: int = 0
) -> dict[str, dict[str, dict[str, Any]]]:
    """Point scores plus 95% percentile intervals of F1 for strict and lenient, per label."""
    point = from_counts(sum(per_doc, Counter()), labels)
    rng = random.Random(seed)
    samples: dict[tuple[str, str], list[float]] = {
        (label, m): [] for label in labels for m in ("strict", "lenient")
    }
    for _ in range(n):
        total: Counter = Counter()
        for i in rng.choices(range(len(per_doc)), k=len(per_doc)):
            total.update(per_doc[i])
        scores = from_counts(total, labels)
        for label in labels:
            for m in ("strict", "lenient"):
                samples[label, m].append(scores[label][m]["f"])
    for label in labels:
        for m in ("strict", "lenient"):
            values = sorted(samples[label, m])
            point[label][m]["ci95"] = [round(values[int(0.025 * n)], 4), round(values[int(0.975 * n) - 1], 4)]
    return point
