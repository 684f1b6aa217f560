"""Test-set evaluation with bootstrap confidence intervals (documents resampled).

Per-document counts come from `scoring.doc_counts`, so a bootstrap resample is a sum of counters,
not a re-run of the model.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .scoring import from_counts


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
