"""Code accuracy of `clin_linker` on gold mentions with known ids (BC5CDR: MeSH ids).

The linker runs on the gold spans (not on predicted ones), so this measures linking alone. A
mention's gold id is "known" when the table of its label holds it for some term; accuracy is the share of
known mentions whose first predicted MeSH id is one of the gold ids (BC5CDR lists composite
mentions as "D1|D2"). Coverage is known / all mentions with a gold id; `listed` is the share of
known mentions whose gold id is anywhere among the linker's codes, the most a better ranking could
reach.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from spacy.tokens import Doc, Span

from .linker import Linker


def gold_ids(span: Span, prefix: str = "MESH") -> set[str]:
    return {f"{prefix}:{part.strip()}" for part in span.kb_id_.split("|") if part.strip()}


def link_scores(
    linker: Linker, docs: Iterable[Doc], labels: Iterable[str], prefix: str = "MESH"
) -> dict[str, dict[str, Any]]:
    """Per label: mentions, known, coverage, accuracy on known, and counts by how each was linked."""
    labels = set(labels)
    known_ids = {
        label: {c for c in linker.table_codes(linker.tables[label]) if c.startswith(prefix + ":")}
        for label in labels
    }
    counts: dict[str, Counter] = defaultdict(Counter)
    by_how: dict[str, Counter] = defaultdict(Counter)
    for gold in docs:
        doc = gold.copy()
        golds = {(e.start, e.end): gold_ids(e, prefix) for e in gold.ents}
        doc.set_ents([Span(doc, e.start, e.end, e.label_) for e in gold.ents])
        linker(doc)
        for ent in doc.ents:
            ids = golds[(ent.start, ent.end)]
            if ent.label_ not in labels or not ids:
                continue
            c = counts[ent.label_]
            c["mentions"] += 1
            if not ids & known_ids[ent.label_]:
                continue
            c["known"] += 1
            listed = [x for x in ent._.codes or [] if x.startswith(prefix + ":")]
            predicted = listed[0] if listed else None
            c["listed"] += bool(ids.intersection(listed))
            how = ent._.link or "none"
            by_how[ent.label_][f"{how}_n"] += 1
            if predicted in ids:
                c["correct"] += 1
                by_how[ent.label_][f"{how}_correct"] += 1
            elif predicted is None:
                c["no_code"] += 1
    out = {}
    for label in sorted(counts):
        c = counts[label]
        out[label] = {
            "mentions": c["mentions"],
            "known": c["known"],
            "coverage": c["known"] / c["mentions"] if c["mentions"] else 0.0,
            "accuracy": c["correct"] / c["known"] if c["known"] else 0.0,
            "accuracy_all_mentions": c["correct"] / c["mentions"] if c["mentions"] else 0.0,
            # the best any ranking of the linker's codes could do: gold id anywhere among them
            "listed": c["listed"] / c["known"] if c["known"] else 0.0,
            "known_without_code": c["no_code"],
            "by_match": dict(sorted(by_how[label].items())),
        }
    return out
