"""Rule teachers: spaCy `Matcher` token patterns kept as data (configs/teachers/rules/*.jsonl),
each match labelling the whole match or only a slice of it.

Written here because `span_ruler` labels the whole match, and a context rule wants the part
next to its cue: in "metformin 500 mg" the drug is token 0, after "complained of" the symptom
is what follows the cue. A pattern line: {"label", "id" (the rule's name), "pattern" (Matcher
tokens), "keep": [start, end] (optional slice of the match, end null for the rest)}.
Overlaps: longest first (`filter_spans`), as the ontology teachers do.
"""

# No `from __future__ import annotations`: spaCy validates factory signatures with pydantic.

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.util import ensure_path, filter_spans

PATTERNS_FILE = "patterns.jsonl"


class RuleSpans:
    def __init__(self, nlp: Language, name: str, spans_key: str) -> None:
        self.nlp = nlp
        self.name = name
        self.spans_key = spans_key
        self.patterns: list[dict[str, Any]] = []
        self.matcher = Matcher(nlp.vocab, validate=True)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({p["label"] for p in self.patterns}))

    def add_patterns(self, patterns: Iterable[dict[str, Any]]) -> None:
        for p in patterns:
            missing = {"label", "id", "pattern"} - set(p)
            if missing:
                raise ValueError(f"rule pattern {len(self.patterns) + 1} lacks {sorted(missing)}")
            self.matcher.add(str(len(self.patterns)), [p["pattern"]], greedy="LONGEST")
            self.patterns.append(p)

    def initialize(
        self,
        get_examples: Callable | None = None,
        *,
        nlp: Language | None = None,
        patterns: list | None = None,
    ) -> None:
        self.patterns = []
        self.matcher = Matcher(self.nlp.vocab, validate=True)
        self.add_patterns(patterns or [])

    def __call__(self, doc: Doc) -> Doc:
        spans = []
        for match_id, start, end in self.matcher(doc):
            p = self.patterns[int(self.nlp.vocab.strings[match_id])]
            lo, hi = p.get("keep") or (0, None)
            s = start + lo
            e = end if hi is None else min(end, start + hi) if hi >= 0 else end + hi
            if s < e:
                spans.append(Span(doc, s, e, label=p["label"], span_id=p["id"]))
        doc.spans[self.spans_key] = filter_spans(spans)
        return doc

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path / PATTERNS_FILE, self.patterns)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "RuleSpans":
        self.initialize(patterns=list(srsly.read_jsonl(ensure_path(path) / PATTERNS_FILE)))
        return self


@Language.factory("clin_distill_rule_spans", default_config={"spans_key": "rules"})
def make_rule_spans(nlp: Language, name: str, spans_key: str) -> RuleSpans:
    return RuleSpans(nlp, name, spans_key)
