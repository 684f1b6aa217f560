"""Strict and lenient precision/recall/F1 per label, for teachers, combinations and students.

Strict = same tokens and label, counted exactly as spaCy's `Scorer.score_spans` counts
(labelled, overlaps allowed; a test checks the two agree on real data). It is counted here
because the combination search scores about a thousand candidates and building spaCy
`Example`s for each would dominate its run time. Lenient (any overlap with a gold span of the
same label) has no spaCy equivalent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

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
    total: Counter = Counter()
    for pred, gold_doc in pairs:
        total.update(doc_counts(list(pred), list(gold_doc.ents), labels))
    return from_counts(total, labels)
