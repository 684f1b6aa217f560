"""Strict and lenient precision/recall/F1 per label, for teachers, combinations and students.

Strict (exact tokens and label) comes from spaCy's `Scorer.score_spans`; lenient (any overlap
with a gold span of the same label) has no spaCy equivalent and is counted here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example

KEY = "scored"


def prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> dict[str, float]:
    p = tp_pred / n_pred if n_pred else 0.0
    r = tp_gold / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f": round(f, 4)}


def _copy_with(doc: Doc, spans: Iterable[Span], labels: Sequence[str]) -> Doc:
    copy = Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    copy.spans[KEY] = [Span(copy, s.start, s.end, s.label_) for s in spans if s.label_ in labels]
    return copy


def lenient_counts(pred: Sequence[Span], gold: Sequence[Span], label: str) -> tuple[int, int, int, int]:
    """(predictions overlapping a same-label gold span, predictions, gold spans overlapped, gold)."""
    p = [(s.start, s.end) for s in pred if s.label_ == label]
    g = [(s.start, s.end) for s in gold if s.label_ == label]
    hit_p = sum(any(a < d and c < b for c, d in g) for a, b in p)
    hit_g = sum(any(a < d and c < b for a, b in p) for c, d in g)
    return hit_p, len(p), hit_g, len(g)


def score(
    pairs: Iterable[tuple[Sequence[Span], Doc]], labels: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Score predicted spans against each gold doc's `doc.ents`: `{label: {strict, lenient}}`."""
    examples = []
    lenient: dict[str, Counter] = {label: Counter() for label in labels}
    for pred_spans, gold_doc in pairs:
        pred_spans = list(pred_spans)
        examples.append(
            Example(_copy_with(gold_doc, pred_spans, labels), _copy_with(gold_doc, gold_doc.ents, labels))
        )
        for label in labels:
            hp, np_, hg, ng = lenient_counts(pred_spans, list(gold_doc.ents), label)
            lenient[label].update({"hp": hp, "np": np_, "hg": hg, "ng": ng})
    strict = Scorer.score_spans(
        examples, KEY, getter=lambda doc, attr: doc.spans.get(attr, []), allow_overlap=True
    )[f"{KEY}_per_type"]
    out = {}
    for label in labels:
        s = strict.get(label, {"p": 0.0, "r": 0.0, "f": 0.0})
        c = lenient[label]
        out[label] = {
            "strict": {k: round(s[k], 4) for k in ("p", "r", "f")},
            "lenient": prf(c["hp"], c["np"], c["hg"], c["ng"]),
        }
    return out
