"""Calibration of the teachers on gold dev (never test): per teacher and term, how often its span
is a gold mention of its label. A term seen at least `min_count` times whose precision is below
`min_precision` is relabelled to the gold label it has most often, when that label covers at
least half of its occurrences, and dropped otherwise.

A term is the span's lower-case text; an occurrence counts only on gold sets that annotate the
teacher's label ("pain" as SYMPTOM is not judged on BC5CDR, which has no symptoms).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from spacy.tokens import Doc, Span

from ..labels import GOLD_LABELS


def term_counts(
    dev: dict[str, Sequence[Doc]], teachers: Sequence[str]
) -> dict[str, dict[tuple[str, str], Counter]]:
    """{teacher: {(term, label): Counter(n=..., <gold label>=exact gold matches with it)}}."""
    counts: dict[str, dict[tuple[str, str], Counter]] = {t: defaultdict(Counter) for t in teachers}
    for set_name, docs in dev.items():
        annotated = set(GOLD_LABELS[set_name.removesuffix("_dev")])
        for doc in docs:
            gold = {(s.start, s.end): s.label_ for s in doc.ents}
            for t in teachers:
                for s in doc.spans.get(t, []):
                    if s.label_ not in annotated:
                        continue
                    c = counts[t][(s.text.lower(), s.label_)]
                    c["n"] += 1
                    g = gold.get((s.start, s.end))
                    if g is not None and g in annotated:
                        c[g] += 1
    return counts


def calibration_table(
    dev: dict[str, Sequence[Doc]], teachers: Sequence[str], min_count: int = 3, min_precision: float = 0.25
) -> dict[str, dict[str, dict[str, Any]]]:
    """{teacher: {"<label>|<term>": {"action": "drop" | "relabel", "label", "n", "precision"}}}."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for t, terms in term_counts(dev, teachers).items():
        table[t] = {}
        for (term, label), c in sorted(terms.items()):
            n = c["n"]
            precision = c[label] / n
            if n < min_count or precision >= min_precision:
                continue
            others = Counter({g: k for g, k in c.items() if g not in ("n", label)})
            best = others.most_common(1)
            entry: dict[str, Any] = {"n": n, "precision": round(precision, 3)}
            if best and best[0][1] / n >= 0.5:
                entry.update(action="relabel", label=best[0][0])
            else:
                entry.update(action="drop")
            table[t][f"{label}|{term}"] = entry
    return table


def calibrate_docs(docs: Iterable[Doc], table: dict[str, dict[str, dict[str, Any]]]) -> Iterable[Doc]:
    """Apply the table to each teacher's span group in place (codes kept on relabelled spans)."""
    for doc in docs:
        for t, rules in table.items():
            if not rules or t not in doc.spans:
                continue
            kept = []
            for s in doc.spans[t]:
                rule = rules.get(f"{s.label_}|{s.text.lower()}")
                if rule is None:
                    kept.append(s)
                elif rule["action"] == "relabel":
                    kept.append(Span(doc, s.start, s.end, label=rule["label"], kb_id=s.kb_id))
            doc.spans[t] = kept
        yield doc
