"""Counts that account for every document and mention a reader saw."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spacy.tokens import Doc

from ..labels import LABELS


def word_count(doc: Doc) -> int:
    """Words as every report counts them: tokens that are not whitespace."""
    return sum(1 for t in doc if not t.is_space)


@dataclass
class CorpusStats:
    """Per (set, split) counts; every mention or document not in the output has a reason."""

    docs: int = 0
    words: int = 0
    entities: Counter = field(default_factory=Counter)  # labels in doc.ents
    spans: Counter = field(default_factory=Counter)  # labels in the gold span group
    raw_types: Counter = field(default_factory=Counter)  # source types, before any alignment
    ignored_types: Counter = field(default_factory=Counter)  # source types outside our labels
    adjustments: Counter = field(default_factory=Counter)  # how spans were adjusted
    skipped: Counter = field(default_factory=Counter)  # reason -> mentions or documents

    def add_doc(self, doc: Doc) -> None:
        self.docs += 1
        self.words += word_count(doc)
        self.entities.update(e.label_ for e in doc.ents)

    @property
    def adjusted_spans(self) -> int:
        return sum(self.adjustments.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "docs": self.docs,
            "words": self.words,
            "entities": {label: self.entities[label] for label in LABELS},
            "spans": {label: self.spans[label] for label in LABELS},
            "adjusted_spans": self.adjusted_spans,
            "adjustments": dict(sorted(self.adjustments.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "raw_types": dict(sorted(self.raw_types.items())),
            "ignored_types": dict(sorted(self.ignored_types.items())),
        }
