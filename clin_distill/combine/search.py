"""Score every non-empty subset of teachers with every strategy on gold dev; pick one per label."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from spacy.tokens import Doc

from ..labels import GOLD_LABELS
from ..scoring import score
from .strategies import STRATEGIES


def subsets(teachers: Sequence[str]) -> list[tuple[str, ...]]:
    """All 2^n - 1 non-empty subsets, smaller first, each in the given teacher order."""
    return [c for k in range(1, len(teachers) + 1) for c in combinations(teachers, k)]


def teacher_weights(
    docs: list[Doc], teachers: Sequence[str], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """{label: {teacher: strict precision on these gold docs}}: the weighted vote's weights."""
    weights: dict[str, dict[str, float]] = {label: {} for label in labels}
    for t in teachers:
        scores = score(((d.spans.get(t, []), d) for d in docs), labels)
        for label in labels:
            weights[label][t] = scores[label]["strict"]["p"]
    return weights


def search(
    dev: dict[str, list[Doc]], teachers: Sequence[str], weights: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """One result per (subset, strategy): strict and lenient scores per gold dev set and label."""
    results = []
    for subset in subsets(teachers):
        for name, strategy in STRATEGIES.items():
            scores = {}
            for set_name, docs in dev.items():
                labels = GOLD_LABELS[set_name]
                pairs = (
                    ([s for label in labels for s in strategy(d, label, subset, weights.get(label, {}))], d)
                    for d in docs
                )
                scores[f"{set_name}_dev"] = score(pairs, labels)
            results.append({"subset": list(subset), "strategy": name, "scores": scores})
    return results


def select(
    results: list[dict[str, Any]], selection_set: str, labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per label, the result with the highest strict F1 on `selection_set`; ties go to fewer
    teachers, then to the earlier strategy in STRATEGIES and the earlier subset.
    """
    order = list(STRATEGIES)
    selected = {}
    for label in labels:
        best = max(
            enumerate(results),
            key=lambda ir: (
                ir[1]["scores"][selection_set][label]["strict"]["f"],
                -len(ir[1]["subset"]),
                -order.index(ir[1]["strategy"]),
                -ir[0],
            ),
        )[1]
        selected[label] = {
            "subset": best["subset"],
            "strategy": best["strategy"],
            "strict_f": best["scores"][selection_set][label]["strict"]["f"],
        }
    return selected
