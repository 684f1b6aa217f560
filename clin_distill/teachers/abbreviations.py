"""Carry a teacher's label from a long form to its in-text abbreviation, and take it off an
abbreviation whose defined long form the teacher did not label.

Abbreviation pairs come from scispaCy's `AbbreviationDetector` (Schwartz & Hearst), run inside
this component after the teacher's ruler; only the label propagation is ours.
"""

# No `from __future__ import annotations`: spaCy validates factory signatures with pydantic.

import warnings

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

# scispaCy's detector runs a global matcher that has no patterns unless a user adds some.
warnings.filterwarnings("ignore", message=r"\[W036\].*matcher")


class AbbreviationSpans:
    def __init__(self, nlp: Language, spans_key: str) -> None:
        # Imported here: spaCy loads every registered factory's module when it looks one up, and
        # `clin-distill extract` users have the model and medspaCy, not scispaCy.
        from scispacy.abbreviation import AbbreviationDetector

        self.spans_key = spans_key
        self.detector = AbbreviationDetector(nlp, make_serializable=False)

    def __call__(self, doc: Doc) -> Doc:
        self.detector(doc)
        spans = list(doc.spans.get(self.spans_key, []))
        for short in doc._.abbreviations:
            long = short._.long_form
            inside = [s for s in spans if long.start <= s.start and s.end == long.end]
            same_place = [s for s in spans if s.start == short.start and s.end == short.end]
            if inside:
                head = max(inside, key=len)
                if not same_place:
                    spans.append(Span(doc, short.start, short.end, head.label, kb_id=head.kb_id))
            else:
                spans = [s for s in spans if s not in same_place]
        doc.spans[self.spans_key] = filter_spans(spans)
        # The detector leaves Span objects in doc.user_data, which DocBin cannot store.
        doc._.abbreviations = []
        for key in [k for k in doc.user_data if isinstance(k, tuple) and k[:2] == ("._.", "long_form")]:
            del doc.user_data[key]
        return doc


@Language.factory("clin_distill_abbreviation_spans", default_config={"spans_key": "sc"})
def make_abbreviation_spans(nlp: Language, name: str, spans_key: str) -> AbbreviationSpans:
    return AbbreviationSpans(nlp, spans_key)
