"""medspaCy's ConText rules with their token patterns written out as phrases, for speed.

Half of medspaCy's default ConText rules are token patterns (`[{"LOWER": {"IN": ["adequate",
"sufficient"]}}, {"LOWER": "to"}, ...]`). spaCy's `Matcher` calls a Python predicate for every
`IN` of every pattern at every token: on the benchmark's notes ConText took 2.8 ms a note, more
than the whole model outside its encoder. A pattern of lower-case words, `IN` lists and optional
(`"OP": "?"`) tokens matches exactly the token sequences it spells out, so each such rule becomes
one literal rule per sequence, matched by ConText's `PhraseMatcher` (on LOWER, hashed: no call
per token). Every other rule (regular expressions, other attributes or operators, a word that
our tokenizer would split, more than `MAX_PHRASES` sequences) is kept as it is.

Written here because medspaCy has no such option; the rules themselves stay medspaCy's.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from spacy.tokens import Doc

if TYPE_CHECKING:  # medspaCy is the `[extract]` extra's
    from medspacy.context import ConTextRule

MAX_PHRASES = 500


def spelled_out(pattern: list[dict]) -> list[list[str]] | None:
    """The word sequences a token pattern matches, or None where it is not a plain word pattern."""
    choices = []
    for token in pattern:
        if set(token) - {"LOWER", "OP"} or token.get("OP", "") not in ("", "?"):
            return None
        value = token.get("LOWER")
        if isinstance(value, str):
            words = [value]
        elif isinstance(value, dict) and set(value) == {"IN"}:
            words = value["IN"]
        else:
            return None
        if any(w != w.lower() for w in words):
            return None  # LOWER never equals a word with capitals; a phrase would be lower-cased
        words = [w for w in words if w and not any(c.isspace() for c in w)]  # one token's LOWER has no space
        choices.append(words + ([""] if token.get("OP") == "?" else []))
    if math.prod(len(words) for words in choices) > MAX_PHRASES:
        return None
    sequences = dict.fromkeys(tuple(w for w in seq if w) for seq in itertools.product(*choices))
    return [list(seq) for seq in sequences if seq]


def phrase_rules(rules: Iterable[ConTextRule], tokenizer: Callable[[str], Doc]) -> list[ConTextRule]:
    """The rules, each plain word pattern replaced by one literal rule per word sequence (the
    rule's category, direction, types, scope and callbacks unchanged)."""
    out = []
    for rule in rules:
        sequences = spelled_out(rule.pattern) if isinstance(rule.pattern, list) else None
        if sequences is not None and all(
            [t.lower_ for t in tokenizer(" ".join(seq))] == seq for seq in sequences
        ):
            for seq in sequences:
                phrase = copy.copy(rule)
                phrase.literal, phrase.pattern = " ".join(seq), None
                out.append(phrase)
        else:
            out.append(rule)
    return out
