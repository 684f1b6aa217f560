"""`clin_stop_terms`: the student's entities whose text is a teachers' stop-list term, removed.

The lexicon teachers never match the terms of configs/teachers/stop_list.txt (common English words
that some lexicon lists, and lab analytes, markers and stains such as troponin or vimentin, chosen
from the teachers' errors on gold dev). The student learns from the teachers' spans in context and
still tags some of these words. Removing its entities whose whole text is such a term lifted
MEDICATION on MACCROBAT gold dev from .537 to .565 strict F1 (precision .493 -> .541), and no other
label moved (reports/experiments.md). The filter is the pipe after `ner` in configs/student.cfg,
so the trainer's dev scoring (which picks model-best), `evaluate` and the packaged model all run it.

The terms are read once, when training initializes the pipeline (`[initialize.components.
clin_stop_terms]`: `paths.stop_list`, which `train-distilled` sets; the human-label student leaves
it empty, so its filter removes nothing), and saved with the pipeline (to_disk/from_disk), so the
packaged model carries them. Written here because spaCy has no
component that removes entities by their text. This file ships inside the packaged model
(`spacy package --code`), so it imports only spaCy and the standard library, and registers its
factory only once when imported under two module names.
"""

import json
from collections.abc import Iterable
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import ensure_path

FACTORY = "clin_stop_terms"


def key(text: str) -> str:
    """A term or an entity's text as it is compared: lower case, runs of whitespace as one space."""
    return " ".join(text.lower().split())


class StopTerms:
    """Drops every entity whose text (see `key`) is a stop term; other entities stay as they are."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.name = name
        self.terms: frozenset[str] = frozenset()

    def set_terms(self, terms: Iterable[str]) -> None:
        self.terms = frozenset(k for k in map(key, terms) if k)

    def initialize(
        self, get_examples=None, *, nlp: Language | None = None, terms: Iterable[str] = ()
    ) -> None:
        """Training reads the terms here (`[initialize.components.clin_stop_terms]`)."""
        self.set_terms(terms)

    def __call__(self, doc: Doc) -> Doc:
        if self.terms:
            ents = doc.ents
            kept = [e for e in ents if key(e.text) not in self.terms]
            if len(kept) < len(ents):
                doc.ents = kept
        return doc

    def to_disk(self, path, exclude=()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "terms.json").write_text(json.dumps(sorted(self.terms), indent=0) + "\n", encoding="utf-8")

    def from_disk(self, path, exclude=()) -> "StopTerms":
        self.set_terms(json.loads((Path(path) / "terms.json").read_text(encoding="utf-8")))
        return self


if not Language.has_factory(FACTORY):
    Language.factory(FACTORY)(StopTerms)

