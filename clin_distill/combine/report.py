"""Step `combine`: score every teacher subset x strategy on gold dev, select the best per label,
and write reports/combinations.{json,md,png}. Human labels are used only here, to choose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import spacy
from spacy.tokens import DocBin

from ..labels import GOLD_LABELS, GOLD_SPANS_KEY, LABELS
from ..reports import markdown_table, write_report
from .search import search, select, teacher_weights
from .strategies import STRATEGIES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def run_search(labelled_dir: Path, report: Path, selection_set: str = "maccrobat_dev") -> dict[str, Any]:
    """Load the teacher-labelled gold dev sets, search, select, and write the report; returns it."""
    vocab = spacy.blank("en").vocab  # lexeme flags (is_space) need the English vocab
    dev = {s: list(DocBin().from_disk(labelled_dir / f"{s}_dev.spacy").get_docs(vocab)) for s in GOLD_LABELS}
    teachers = sorted(
        set.intersection(*(set(d.spans) for docs in dev.values() for d in docs)) - {GOLD_SPANS_KEY}
    )
    if not teachers:
        raise ValueError(f"no teacher span groups in {labelled_dir}/*_dev.spacy")
    weights = teacher_weights(dev[selection_set.removesuffix("_dev")], teachers, LABELS)
    results = search(dev, teachers, weights)
    selected = select(results, selection_set, LABELS)
    out = {
        "teachers": teachers,
        "strategies": list(STRATEGIES),
        "selection_set": selection_set,
        "weights": weights,
        "results": results,
        "selected": selected,
    }
    write_reports(out, report)
    plot(out, report.with_suffix(".png"))
    return out


def write_reports(out: dict, report: Path) -> None:
    sel = out["selection_set"]
    intro = (
        f"Written by `weasel run combine`: {len(out['results'])} results = (2^{len(out['teachers'])} - 1) "
        f"subsets x {len(out['strategies'])} strategies, scored on the gold dev sets.\n"
        f"Selection: highest strict F1 on `{sel}` per label, ties to fewer teachers.\n\n## Selected"
    )
    selected = [
        [label, " + ".join(s["subset"]), s["strategy"], f"{s['strict_f']:.3f}"]
        for label, s in out["selected"].items()
    ]
    results = [
        [
            " + ".join(r["subset"]),
            r["strategy"],
            *(f"{r['scores'][sel][label]['strict']['f']:.3f}" for label in LABELS),
        ]
        for r in out["results"]
    ]
    after = [
        "",
        f"## All results (strict F1 on {sel}; other dev sets in the JSON)",
        "",
        *markdown_table(["teachers", "strategy", *LABELS], results),
    ]
    header = ["label", "teachers", "strategy", "strict F1"]
    write_report(report, out, "Teacher combinations", intro, header, selected, after=after)


def plot(out: dict, path: Path) -> None:
    """Best strategy's strict F1 per subset and label on the selection set."""
    sel = out["selection_set"]
    names = ["+".join(s) for s in dict.fromkeys(tuple(r["subset"]) for r in out["results"])]
    fig, axes = plt.subplots(1, len(LABELS), figsize=(4 * len(LABELS), 1 + 0.35 * len(names)), sharey=True)
    for ax, label in zip(axes, LABELS, strict=True):
        best = {n: 0.0 for n in names}
        for r in out["results"]:
            n = "+".join(r["subset"])
            best[n] = max(best[n], r["scores"][sel][label]["strict"]["f"])
        ax.barh(names, [best[n] for n in names], color="#4c72b0")
        ax.set_title(label)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"strict F1 ({sel}, best strategy)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
