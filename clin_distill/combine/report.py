"""Steps `calibrate` and `combine`: teachers calibrated on gold dev, then every teacher subset x
strategy scored on gold dev and the best per label selected; reports/calibration.{json,md} and
reports/combinations.{json,md,png}. Human labels are used only here, on dev, to choose."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import matplotlib

from ..labels import GOLD_LABELS, GOLD_SPANS_KEY, LABELS
from ..reports import markdown_table, write_report
from ..scoring import score
from .calibrate import calibrate_docs, calibration_table
from .inputs import load_docs, read_calibration
from .search import (
    ALL_STRATEGIES,
    DEV_MEAN,
    expand,
    leave_one_out,
    namers,
    present,
    search_label,
    select_joint,
    teacher_weights,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEV_SETS = tuple(f"{s}_dev" for s in GOLD_LABELS)


def load_dev(labelled_dir: Path, llm_dir: Path | None, table: dict | None = None) -> tuple[dict, list[str]]:
    dev = {s: load_docs(labelled_dir, s, llm_dir, table) for s in DEV_SETS}
    found = {k for docs in dev.values() for d in docs for k in d.spans} - {GOLD_SPANS_KEY}
    teachers = sorted(t for t in found if any(present(docs, t) for docs in dev.values()))
    if not teachers:
        raise ValueError(f"no teacher span groups in {labelled_dir}/*_dev.spacy")
    return dev, teachers


def teacher_scores(dev: dict, teachers: list[str]) -> dict[str, dict[str, Any]]:
    """{teacher: {dev set: {label: strict/lenient}}} on the labels it names and the set annotates."""
    out: dict[str, dict[str, Any]] = {}
    for t in teachers:
        out[t] = {}
        for s, docs in dev.items():
            labels = [lb for lb in GOLD_LABELS[s.removesuffix("_dev")] if t in namers({s: docs}, [t], lb)]
            if present(docs, t) and labels:
                out[t][s] = score(((d.spans[t], d) for d in docs), labels)
    return out


def run_calibration(
    labelled_dir: Path, llm_dir: Path | None, out: Path, report: Path, min_count: int, min_precision: float
) -> dict[str, Any]:
    dev, teachers = load_dev(labelled_dir, llm_dir)
    before = teacher_scores(dev, teachers)
    table = calibration_table(dev, teachers, min_count, min_precision)
    for docs in dev.values():
        list(calibrate_docs(docs, table))
    after = teacher_scores(dev, teachers)
    data = {
        "min_count": min_count,
        "min_precision": min_precision,
        "sets": list(DEV_SETS),
        "table": table,
        "before": before,
        "after": after,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    rows = []
    for t in teachers:
        for s, labels in before[t].items():
            for label, b in labels.items():
                a = after[t].get(s, {}).get(label)
                af = f"{a['strict']['p']:.2f}/{a['strict']['r']:.2f}/{a['strict']['f']:.3f}" if a else "-"
                rows.append(
                    [t, s, label, f"{b['strict']['p']:.2f}/{b['strict']['r']:.2f}/{b['strict']['f']:.3f}", af]
                )
    actions = {t: {"drop": 0, "relabel": 0} for t in teachers}
    for t, rules in table.items():
        for r in rules.values():
            actions[t][r["action"]] += 1
    intro = (
        "Written by `weasel run calibrate`, on the gold dev sets only: per teacher and term (span text, "
        f"lower case), a term seen at least {min_count} times whose strict precision is below "
        f"{min_precision} is relabelled to its majority gold label (when that covers half of its "
        "occurrences) or dropped. The same dev sets judge before and after, so the gain here is "
        "optimistic; the test sets in `reports/evaluation.md` are the honest measure.\n\n"
        "Terms changed per teacher: "
        + ", ".join(f"{t} {a['drop']} dropped / {a['relabel']} relabelled" for t, a in actions.items())
    )
    header = ["teacher", "dev set", "label", "strict P/R/F1 before", "after calibration"]
    write_report(report, data, "Teacher calibration on gold dev", intro, header, rows)
    return data


def run_search(
    labelled_dir: Path,
    report: Path,
    selection_set: str = "maccrobat_dev",
    llm_dir: Path | None = None,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """Load the (calibrated) teacher-labelled gold dev sets, search, select, write the report."""
    start = time.perf_counter()
    dev, teachers = load_dev(labelled_dir, llm_dir, read_calibration(calibration))
    if selection_set not in (*dev, DEV_MEAN):
        raise ValueError(f"selection set {selection_set} is not one of {[*dev, DEV_MEAN]}")
    weights = teacher_weights(dev, teachers, LABELS, selection_set)
    by_label = {}
    for label in LABELS:
        own = namers(dev, teachers, label)
        by_label[label] = search_label(dev, label, own, weights[label], selection_set) if own else []
    selected, joint = select_joint(dev, by_label, weights, selection_set)
    results = expand(by_label, teachers, selection_set)
    out = {
        "teachers": teachers,
        "llm_teachers": {
            t: [s for s, d in dev.items() if present(d, t)]
            for t in teachers
            if not all(present(d, t) for d in dev.values())
        },
        "strategies": list(ALL_STRATEGIES),
        "selection_set": selection_set,
        "calibrated": calibration is not None,
        "weights": weights,
        "selected": selected,
        "joint_selection": joint,
        "leave_one_out": leave_one_out(by_label, selected, selection_set),
        "search_seconds": round(time.perf_counter() - start, 1),
        "n_results": len(results),
        "by_label": by_label,
        "results_columns": [
            "teachers",
            "strategy",
            *(f"{label} strict F1 {selection_set}" for label in by_label),
        ],
        "results": results,
    }
    write_reports(out, report)
    plot(out, report.with_suffix(".png"))
    return out


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def write_reports(out: dict, report: Path) -> None:
    sel = out["selection_set"]
    n = len(out["teachers"])
    llm = "; ".join(f"{t} on {', '.join(sets)}" for t, sets in out["llm_teachers"].items()) or "none"
    rule = (
        "mean strict F1 over the gold dev sets annotating the label (only results scored on all of "
        "them compete)"
        if sel == DEV_MEAN
        else f"strict F1 on `{sel}`"
    )
    intro = (
        f"Written by `weasel run combine` in {out['search_seconds']} s: {out['n_results']:,} results = "
        f"(2^{n} - 1) subsets x {len(out['strategies'])} strategies ({', '.join(out['strategies'])}), "
        "each scored per label on the gold dev sets after calibration. "
        f"Teachers: {', '.join(out['teachers'])}"
        f" (LLM teachers label only some dev sets: {llm}).\n"
        f"A subset's result for a label is that of its teachers naming the label. Selection: highest "
        f"{rule} per label, ties to fewer teachers. The label model is scored on the other "
        "dev sets for its best subsets only (it is refitted per subset).\n"
        f"{joint_line(out['joint_selection'])}\n\n## Selected"
    )
    dev_sets = [*DEV_SETS, DEV_MEAN]
    selected = [
        [
            label,
            " + ".join(s["subset"]),
            s["strategy"],
            *(fmt(strict_of(s["scores"].get(d))) for d in dev_sets),
        ]
        for label, s in out["selected"].items()
    ]
    after = ["", "## What each selected teacher adds (strict F1 on the selection set without it)", ""]
    loo_rows = [
        [label, t, f"{d:+.3f}" if d is not None else "-"]
        for label, v in out["leave_one_out"].items()
        for t, d in v["selected_minus_teacher"].items()
    ]
    after += markdown_table(["label", "teacher", "selected minus without it"], loo_rows)
    after += ["", "## Best result with and without each teacher (selection set)", ""]
    ww = [
        [label, t, fmt(b["best_with"]), fmt(b["best_without"])]
        for label, v in out["leave_one_out"].items()
        for t, b in v["best_with_without"].items()
    ]
    after += markdown_table(["label", "teacher", "best with", "best without"], ww)
    for label, results in out["by_label"].items():
        top = sorted(
            (r for r in results if r["scores"].get(sel)), key=lambda r: -r["scores"][sel]["strict"]["f"]
        )[:10]
        rows = [
            [" + ".join(r["subset"]), r["strategy"], *(fmt(strict_of(r["scores"].get(d))) for d in dev_sets)]
            for r in top
        ]
        after += ["", f"## Top 10 for {label} (strict F1; all results in the JSON)", ""]
        after += markdown_table(["teachers", "strategy", *dev_sets], rows)
    header = ["label", "teachers", "strategy", *(f"strict F1 {d}" for d in dev_sets)]
    write_report(report, out, "Teacher combinations", intro, header, selected, after=after)


def joint_line(joint: dict[str, Any]) -> str:
    """The joint step in one sentence: what it compared and what it changed."""
    if "skipped" in joint:
        return f"Joint selection skipped: {joint['skipped']}."
    head = (
        f"Joint selection: every choice of one of each label's top {joint['top']} scored together after "
        f"the cross-label overlap step, on {', '.join(joint['sets'])}: mean strict F1 over labels "
        f"{joint['mean_per_label_choice']:.3f} with the per-label choices"
    )
    if not joint["changed"]:
        return head + ", which stay (none scored higher)."
    return (
        head
        + f", {joint['mean_joint_choice']:.3f} with the joint choice"
        + f" (changed: {', '.join(joint['changed'])})."
    )


def strict_of(s: dict | None) -> float | None:
    return None if s is None else s["strict"]["f"]


def plot(out: dict, path: Path) -> None:
    """Per label, the selection-set strict F1 of every result, sorted, by strategy."""
    sel = out["selection_set"]
    fig, axes = plt.subplots(1, len(LABELS), figsize=(4.5 * len(LABELS), 3.6), sharey=True)
    for ax, label in zip(axes, LABELS, strict=True):
        for strategy in out["strategies"]:
            f = sorted(
                (
                    r["scores"][sel]["strict"]["f"]
                    for r in out["by_label"][label]
                    if r["strategy"] == strategy and r["scores"].get(sel)
                ),
                reverse=True,
            )
            ax.plot(range(1, len(f) + 1), f, marker=".", linewidth=1, label=strategy)
        chosen = out["selected"][label]
        ax.axhline(chosen["strict_f"], color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{label}: {'+'.join(chosen['subset'])} / {chosen['strategy']}", fontsize=8)
        ax.set_xlabel("subsets of the label's teachers, best first")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel(f"strict F1 on {sel}")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
