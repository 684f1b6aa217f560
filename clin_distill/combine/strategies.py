"""Merge strategies over teacher span groups: union, intersection, majority and weighted vote;
the label model (skweak's HMM) is in label_model.py.

These four are written here: skweak's voters work on token-level BIO labels, which cannot express
the span-level rules below (exact-match intersection, votes over partially overlapping spans).
They are a few dozen lines each and are tested on hand-built span groups.

Every strategy works on one label at a time (the search picks a combination per label), takes
the spans of that label from each teacher of the subset, and returns non-overlapping spans.
Overlap rule, shared by all: among overlapping candidates, keep the longest, then the earliest
(spaCy's `filter_spans`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from spacy.tokens import Doc, Span
from spacy.util import filter_spans

Key = tuple[int, int]  # token start, end
Strategy = Callable[[Doc, str, Sequence[str], dict[str, float]], list[Span]]


def _spans(doc: Doc, teacher: str, label: str) -> list[Span]:
    return [s for s in doc.spans.get(teacher, []) if s.label_ == label]


def _clusters(per_teacher: dict[str, list[Span]]) -> list[list[tuple[str, Span]]]:
    """Groups of (teacher, span) connected by token overlap, in text order."""
    items = sorted(
        ((s.start, s.end, t, s) for t, spans in per_teacher.items() for s in spans), key=lambda x: x[:2]
    )
    clusters: list[list[tuple[str, Span]]] = []
    end = -1
    for start, stop, teacher, span in items:
        if not clusters or start >= end:
            clusters.append([])
            end = stop
        clusters[-1].append((teacher, span))
        end = max(end, stop)
    return clusters


def _representative(members: list[tuple[str, Span]], weights: dict[str, float]) -> Span:
    """The boundaries most (weighted) teachers chose; ties go to the longer, then earlier span."""
    score: Counter[Key] = Counter()
    by_key: dict[Key, Span] = {}
    for teacher, span in members:
        key = (span.start, span.end)
        score[key] += weights.get(teacher, 1.0)
        by_key.setdefault(key, span)
    best = max(score, key=lambda k: (score[k], k[1] - k[0], -k[0]))
    return by_key[best]


def union(doc: Doc, label: str, teachers: Sequence[str], weights: dict[str, float]) -> list[Span]:
    """Every span any teacher gave the label; overlaps resolved longest-first."""
    return filter_spans([s for t in teachers for s in _spans(doc, t, label)])


def intersection(doc: Doc, label: str, teachers: Sequence[str], weights: dict[str, float]) -> list[Span]:
    """Spans every teacher of the subset gave with exactly the same boundaries and label."""
    keys = [{(s.start, s.end): s for s in _spans(doc, t, label)} for t in teachers]
    common = set.intersection(*(set(k) for k in keys)) if keys else set()
    return filter_spans([keys[0][k] for k in common])


def majority(doc: Doc, label: str, teachers: Sequence[str], weights: dict[str, float]) -> list[Span]:
    """Clusters of overlapping spans backed by more than half of the subset's teachers.

    Partial overlap counts as agreement; the kept boundaries are those most teachers chose.
    """
    need = len(teachers) // 2 + 1
    per_teacher = {t: _spans(doc, t, label) for t in teachers}
    out = []
    for members in _clusters(per_teacher):
        if len({t for t, _ in members}) >= need:
            out.append(_representative(members, {}))
    return filter_spans(out)


def weighted(doc: Doc, label: str, teachers: Sequence[str], weights: dict[str, float]) -> list[Span]:
    """Clusters whose backing teachers' weights (their dev precision for the label) reach half
    of the subset's total weight; boundaries chosen by weight.
    """
    total = sum(weights.get(t, 0.0) for t in teachers)
    per_teacher = {t: _spans(doc, t, label) for t in teachers}
    out = []
    for members in _clusters(per_teacher):
        backing = sum(weights.get(t, 0.0) for t in {t for t, _ in members})
        if total > 0 and backing >= total / 2:
            out.append(_representative(members, weights))
    return filter_spans(out)


STRATEGIES: dict[str, Strategy] = {
    "union": union,
    "intersection": intersection,
    "majority": majority,
    "weighted": weighted,
}


def combine(
    docs: Sequence[Doc], selected: dict[str, tuple[Sequence[str], str]], weights: dict[str, dict[str, float]]
) -> list[list[Span]]:
    """Entities per doc from a per-label choice {label: (teachers, strategy)}; the label model is
    fitted on these docs (no gold label used). Spans of different labels that overlap are
    resolved by the same longest-then-earliest rule."""
    from .label_model import label_model  # skweak is imported only where the label model runs

    per_doc: list[list[Span]] = [[] for _ in docs]
    for label, (teachers, strategy) in selected.items():
        missing = [t for t in teachers if any(t not in d.spans for d in docs)]
        if missing:
            raise ValueError(f"{label}: the selected teachers {missing} did not label these documents")
        if strategy == "label_model":
            preds = label_model(docs, label, teachers)
        else:
            preds = [STRATEGIES[strategy](d, label, teachers, weights.get(label, {})) for d in docs]
        for out, spans in zip(per_doc, preds, strict=True):
            out.extend(spans)
    return [merge_labels(spans) for spans in per_doc]


def merge_labels(spans: list[Span]) -> list[Span]:
    """One doc's spans of all labels, in label order, as entities: overlaps across labels resolved
    longest-then-earliest (`filter_spans`). The search's joint step scores choices through this."""
    return filter_spans(spans)
