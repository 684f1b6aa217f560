"""Put character-offset gold mentions onto spaCy tokens, counting every change.

Policy (the same for every gold corpus):
- Leading/trailing whitespace inside an offset pair is trimmed ("trimmed_whitespace").
- Offsets that cut through a token are widened to whole tokens with
  `Doc.char_span(alignment_mode="expand")` ("expanded_to_tokens").
- Every aligned mention is kept in `doc.spans["gold"]`, overlapping or nested ones included;
  exact duplicates (same tokens and label) are kept once ("duplicate_span").
- `doc.ents` must not overlap: spaCy's `filter_spans` keeps the longest span, then the
  earliest; each span it drops is counted as "overlap_not_in_ents" (it stays in the group).
"""

from __future__ import annotations

from dataclasses import dataclass

from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ..labels import GOLD_SPANS_KEY
from .stats import CorpusStats

if not Span.has_extension("source_type"):
    # The corpus's own annotation type (e.g. "Sign_symptom", "Chemical", "SpecificDisease").
    Span.set_extension("source_type", default=None)


@dataclass(frozen=True)
class Mention:
    """A gold mention as the source gives it: character offsets into the document text."""

    start: int
    end: int
    label: str
    source_type: str
    kb_id: str = ""


def set_gold_spans(doc: Doc, mentions: list[Mention], stats: CorpusStats) -> Doc:
    """Align mentions to tokens, fill the gold span group and derive non-overlapping ents."""
    text = doc.text
    spans: dict[tuple[int, int, str], Span] = {}
    for m in mentions:
        start, end = m.start, m.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            stats.skipped["empty_after_trim"] += 1
            continue
        if (start, end) != (m.start, m.end):
            stats.adjustments["trimmed_whitespace"] += 1
        span = doc.char_span(start, end, label=m.label, kb_id=m.kb_id)
        if span is None:
            span = doc.char_span(start, end, label=m.label, kb_id=m.kb_id, alignment_mode="expand")
            if span is None:
                stats.skipped["unalignable"] += 1
                continue
            stats.adjustments["expanded_to_tokens"] += 1
        key = (span.start, span.end, m.label)
        if key in spans:
            stats.skipped["duplicate_span"] += 1
            continue
        span._.source_type = m.source_type
        spans[key] = span
    group = sorted(spans.values(), key=lambda s: (s.start, s.end, s.label_))
    doc.spans[GOLD_SPANS_KEY] = group
    stats.spans.update(s.label_ for s in group)
    ents = filter_spans(group)
    stats.skipped["overlap_not_in_ents"] += len(group) - len(ents)
    doc.ents = ents
    return doc
