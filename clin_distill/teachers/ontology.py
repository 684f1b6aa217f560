"""Ontology teachers are spaCy's `span_ruler` (phrase patterns on LOWER) plus this component.

`span_ruler` keeps a pattern's `id` as `span.id_`; the combination step and the student's
model card want the concept code where spaCy keeps knowledge-base ids, `span.kb_id_`.
"""

# No `from __future__ import annotations` here: spaCy validates factory signatures with pydantic,
# which needs real types, not strings.

from spacy.language import Language
from spacy.tokens import Doc, Span


class PatternIdsAsKbIds:
    def __init__(self, spans_key: str) -> None:
        self.spans_key = spans_key

    def __call__(self, doc: Doc) -> Doc:
        group = doc.spans.get(self.spans_key)
        if group:
            doc.spans[self.spans_key] = [
                Span(doc, s.start, s.end, s.label, kb_id=s.id, span_id=s.id) for s in group
            ]
        return doc


@Language.factory("clin_distill_pattern_ids_as_kb_ids", default_config={"spans_key": "sc"})
def make_pattern_ids_as_kb_ids(nlp: Language, name: str, spans_key: str) -> PatternIdsAsKbIds:
    return PatternIdsAsKbIds(spans_key)
