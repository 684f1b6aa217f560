"""Strict and lenient precision/recall/F1 per label, for teachers, combinations and students.

Strict = same tokens and label, counted exactly as spaCy's `Scorer.score_spans` counts
(labelled, overlaps allowed; a test checks the two agree on real data). It is counted here
because the combination search scores about a thousand candidates and building spaCy
`Example`s for each would dominate its run time. Lenient (any overlap with a gold span of the
same label) has no spaCy equivalent. Test-set intervals come from `bootstrap` over per-document
counts, so a resample is a sum of counters, not a re-run of the model; `paired_bootstrap` draws
the same documents for two models, so the interval of their difference leaves out what they share.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
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


COUNT_KEYS = ("tp", "np", "ng", "hp", "hg")


def _f1_arrays(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Strict and lenient F1 (as `prf`) from count columns in COUNT_KEYS order, row by row."""
    tp, n_pred, n_gold, hp, hg = (totals[..., i] for i in range(len(COUNT_KEYS)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n_pred > 0, hp / n_pred, 0.0)
        r = np.where(n_gold > 0, hg / n_gold, 0.0)
        lenient = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        strict = np.where(n_pred + n_gold > 0, 2 * tp / (n_pred + n_gold), 0.0)
    return {"strict": strict, "lenient": lenient}


def paired_bootstrap(
    pairs: Sequence[tuple[Sequence[Counter], Sequence[Counter]]],
    labels: Sequence[str],
    n: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """F1 of model a minus model b per label, strict and lenient, with a 95% percentile interval.

    `pairs`: (a's, b's) per-document counts (`doc_counts`) over the same documents in the same
    order; with several pairs (one per training seed, say) the difference is their mean. Every
    resample draws the same documents for every pair, so what the two models share (an easy or a
    hard note) cancels and the interval reflects only how their difference varies with the notes.
    Written here because no installed library bootstraps spaCy span counts; NumPy sums the draws.
    """
    docs = len(pairs[0][0])
    if any(len(a) != docs or len(b) != docs for a, b in pairs):
        raise ValueError("paired_bootstrap: every model must be counted on the same documents")
    rng = np.random.default_rng(seed)
    draws = np.stack([np.bincount(rng.integers(0, docs, docs), minlength=docs) for _ in range(n)])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label in labels:
        keys = [(label, k) for k in COUNT_KEYS]
        diffs: dict[str, list[np.ndarray]] = {"strict": [], "lenient": []}
        points: dict[str, list[float]] = {"strict": [], "lenient": []}
        for a, b in pairs:
            ma = np.array([[c[k] for k in keys] for c in a], dtype=float).reshape(docs, len(keys))
            mb = np.array([[c[k] for k in keys] for c in b], dtype=float).reshape(docs, len(keys))
            fa, fb = _f1_arrays(draws @ ma), _f1_arrays(draws @ mb)
            wa, wb = (from_counts(sum(x, Counter()), [label])[label] for x in (a, b))
            for m in ("strict", "lenient"):
                diffs[m].append(fa[m] - fb[m])
                points[m].append(wa[m]["f"] - wb[m]["f"])
        out[label] = {}
        for m in ("strict", "lenient"):
            values = np.sort(np.mean(diffs[m], axis=0))
            low, high = values[int(0.025 * n)], values[int(0.975 * n) - 1]
            out[label][m] = {
                "diff": round(float(np.mean(points[m])), 4),
                "ci95": [round(float(low), 4), round(float(high), 4)],
            }
    return out
