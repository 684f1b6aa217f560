"""Partial labels for the distillation corpus: which tokens the student's NER loss ignores, and
which spans it is told are wrong.

A token no selected teacher labelled is an "O" by default: the student learns it is outside every
entity, so the teachers' blind spots become the student's (AutoNER, Shang et al. 2018: unmatched
tokens as unknown rather than negative). spaCy trains on the rest when a token is missing (BILUO
"-", `Doc.set_ents(missing=...)`), and the ner component's `incorrect_spans_key` names spans known
to be wrong with their label. Measured before (../shared/notes/partial-labels-naive.md): making a
word missing wherever it occurs inside some teacher entity elsewhere removed the negatives the
teachers had right and cost precision on every label. The rules here aim the uncertainty at the
places the teachers themselves dispute.

The rule is chosen in configs/distil.cfg (`[partial_labels]`) through spaCy's registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spacy.lang.en import English
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy.vocab import Vocab

# Span group of the spans known to be wrong, read by the ner component (`incorrect_spans_key`).
INCORRECT_SPANS_KEY = "incorrect_spans"

# (doc, merged entities, teacher names, vetoed spans) -> (missing spans, incorrect spans)
PartialRule = Callable[[Doc, Sequence[Span], Sequence[str], Sequence[Span]], tuple[list[Span], list[Span]]]


def dropped_terms(table: dict[str, dict[str, dict[str, Any]]] | None) -> dict[str, set[str]]:
    """{label: {term}}: the terms calibration dropped for a label in some teacher (dev precision
    below its threshold and no majority gold label): the teachers' own veto list."""
    out: dict[str, set[str]] = {}
    for rules in (table or {}).values():
        for key, rule in rules.items():
            if rule["action"] == "drop":
                label, term = key.split("|", 1)
                out.setdefault(label, set()).add(term)
    return out


class Vetoes:
    """Every occurrence (lower case, same tokens) of a term calibration dropped for a label, as a
    span with that label; spaCy's PhraseMatcher finds them."""

    def __init__(self, vocab: Vocab, drops: dict[str, set[str]]) -> None:
        self.matcher = PhraseMatcher(vocab, attr="LOWER")
        make_doc = English(vocab=vocab).make_doc
        for label, terms in sorted(drops.items()):
            self.matcher.add(label, [make_doc(t) for t in sorted(terms)])

    def __call__(self, doc: Doc) -> list[Span]:
        return self.matcher(doc, as_spans=True) if len(self.matcher) else []


@registry.misc("clin_distill.all_outside.v1")
def all_outside() -> PartialRule:
    """Every token outside the merged entities is "O" and nothing is marked wrong (the plain
    distillation corpus)."""

    def rule(doc: Doc, ents: Sequence[Span], teachers: Sequence[str], vetoes: Sequence[Span]):
        return [], []

    return rule


@registry.misc("clin_distill.teacher_disagreement.v1")
def teacher_disagreement(min_teachers: int = 1, use_vetoes: bool = True) -> PartialRule:
    """Missing: tokens inside a span that at least `min_teachers` teachers gave (any teacher, any
    label, selected or not; after calibration) but that no merged entity covers, i.e. where the
    teachers dispute the selected combination. Every other token outside the entities stays "O",
    so text no teacher took for an entity keeps its negatives. Incorrect (`use_vetoes`): the
    occurrences of terms calibration dropped, with the dropped label, unless a merged entity has
    exactly those tokens and that label."""

    def rule(doc: Doc, ents: Sequence[Span], teachers: Sequence[str], vetoes: Sequence[Span]):
        covered = [False] * len(doc)
        for ent in ents:
            covered[ent.start : ent.end] = [True] * len(ent)
        votes: list[set[str]] = [set() for _ in doc]
        for teacher in teachers:
            for span in doc.spans.get(teacher, []):
                for i in range(span.start, span.end):
                    votes[i].add(teacher)
        missing: list[Span] = []
        i = 0
        while i < len(doc):
            if covered[i] or len(votes[i]) < min_teachers:
                i += 1
                continue
            j = i
            while j < len(doc) and not covered[j] and len(votes[j]) >= min_teachers:
                j += 1
            missing.append(doc[i:j])
            i = j
        kept = {(e.start, e.end, e.label_) for e in ents}
        incorrect = [v for v in vetoes if (v.start, v.end, v.label_) not in kept] if use_vetoes else []
        return missing, incorrect

    return rule


def apply_partial_labels(
    doc: Doc, ents: Sequence[Span], missing: Sequence[Span], incorrect: Sequence[Span]
) -> None:
    """Entities, then missing tokens (BILUO "-") where no entity is, then the incorrect spans."""
    doc.set_ents(list(ents), default="outside")
    if missing:
        doc.set_ents([], missing=list(missing), default="unmodified")
    doc.spans[INCORRECT_SPANS_KEY] = list(incorrect)
