"""Score every non-empty subset of teachers with every strategy on gold dev; pick one per label.

The search runs one label at a time, and for a label only the teachers that name it matter: a
subset's result for MEDICATION is that of its medication teachers. So each label scores the
subsets of its own teachers (2^k - 1, k <= n) and every one of the 2^n - 1 subsets takes its
per-label result from there: the same numbers as scoring all of them, in seconds for n >= 8.
A teacher that did not label a dev set (an LLM labels the selection set only) leaves the
results of its subsets on that set empty (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, product
from typing import Any

from spacy.tokens import Doc, Span
from tqdm import tqdm

from ..labels import GOLD_LABELS
from ..parallel import forked_map
from ..scoring import score, score_spans
from .label_model import label_model
from .strategies import STRATEGIES, merge_labels

LABEL_MODEL = "label_model"
ALL_STRATEGIES = (*STRATEGIES, LABEL_MODEL)
# The label model is refitted for every subset, which is the slow part of the search: it is
# scored on the selection set for every subset, and on the other dev sets for its best few (with
# dev_mean, their leave-one-out subsets too).
LABEL_MODEL_TOP_ON_OTHER_SETS = 5
# `dev_mean` selects on the mean strict F1 over every gold dev set that annotates the label (only
# results scored on all of them compete) instead of one set's: on maccrobat_dev alone the disease
# winner was 0.007 above a label model 0.15 higher on bc5cdr_dev (reports/experiments.md).
DEV_MEAN = "dev_mean"


def subsets(teachers: Sequence[str]) -> list[tuple[str, ...]]:
    """All 2^n - 1 non-empty subsets, smaller first, each in the given teacher order."""
    return [c for k in range(1, len(teachers) + 1) for c in combinations(teachers, k)]


def present(docs: Sequence[Doc], teacher: str) -> bool:
    return bool(docs) and all(teacher in d.spans for d in docs)


def namers(dev: dict[str, list[Doc]], teachers: Sequence[str], label: str) -> list[str]:
    """The teachers that give `label` to at least one span of any dev set, in teacher order."""
    return [
        t
        for t in teachers
        if any(s.label_ == label for docs in dev.values() for d in docs for s in d.spans.get(t, []))
    ]


def label_sets(dev: dict[str, list[Doc]], label: str) -> list[str]:
    """The dev sets whose gold annotates `label`, in dev order."""
    return [s for s in dev if label in GOLD_LABELS[s.removesuffix("_dev")]]


def teacher_weights(
    dev: dict[str, list[Doc]], teachers: Sequence[str], labels: Sequence[str], selection_set: str
) -> dict[str, dict[str, float]]:
    """{label: {teacher: strict precision}}: the weighted vote's weights, on the selection set, or
    for `dev_mean` on the pooled dev sets annotating the label that the teacher labelled."""
    weights: dict[str, dict[str, float]] = {label: {} for label in labels}
    for label in labels:
        sets = label_sets(dev, label) if selection_set == DEV_MEAN else [selection_set]
        for t in teachers:
            docs = [d for s in sets if present(dev[s], t) for d in dev[s]]
            if docs:
                scores = score(((d.spans.get(t, []), d) for d in docs), [label])
                weights[label][t] = scores[label]["strict"]["p"]
    return weights


def gold_spans(docs: Sequence[Doc], label: str) -> list[list[Span]]:
    """Each doc's gold entities of `label`, read once: `doc.ents` builds its Spans at every read."""
    return [[e for e in d.ents if e.label_ == label] for d in docs]


def score_one(
    docs: list[Doc],
    label: str,
    subset: Sequence[str],
    strategy: str,
    weights: dict[str, float],
    gold: list[list[Span]],
) -> dict[str, Any]:
    """One subset and strategy on one dev set; `gold`: the docs' `gold_spans` of the label."""
    preds = predictions(docs, label, subset, strategy, weights)
    return score_spans(zip(preds, gold, strict=True), [label])[label]


def predictions(
    docs: list[Doc], label: str, subset: Sequence[str], strategy: str, weights: dict[str, float]
) -> list[list[Span]]:
    """Each doc's spans of `label` from `subset` merged by `strategy`."""
    if strategy == LABEL_MODEL:
        return label_model(docs, label, subset)
    return [STRATEGIES[strategy](d, label, subset, weights) for d in docs]


# Label-model fits run side by side in forked processes (`forked_map`: one per core, at most
# this many): each fit is independent and takes most of the search's time.
MAX_WORKERS = 4


def label_model_scores(
    dev: dict[str, list[Doc]],
    gold: dict[str, list[list[Span]]],
    label: str,
    jobs: list[tuple[str, tuple[str, ...]]],
) -> list[dict[str, Any]]:
    """The label model's scores for each (dev set, subset) of `jobs`, in order."""

    def fit(job: tuple[str, tuple[str, ...]]) -> dict[str, Any]:
        s, subset = job
        return score_one(dev[s], label, subset, LABEL_MODEL, {}, gold[s])

    bar = {"desc": f"label model {label}", "unit": "fit", "leave": False}
    return list(forked_map(fit, jobs, MAX_WORKERS, **bar))


def _fill_label_model_scores(
    dev: dict[str, list[Doc]],
    gold: dict[str, list[list[Span]]],
    label: str,
    fits: list[tuple[dict[str, Any], str]],
) -> None:
    """Each (result, dev set) of `fits` gets its label model's scores on that set."""
    jobs = [(s, tuple(r["subset"])) for r, s in fits]
    for (r, s), scores in zip(fits, label_model_scores(dev, gold, label, jobs), strict=True):
        r["scores"][s] = scores


def search_label(
    dev: dict[str, list[Doc]],
    label: str,
    teachers: Sequence[str],
    weights: dict[str, float],
    selection_set: str,
) -> list[dict[str, Any]]:
    """Every subset of `teachers` (the label's own) x strategy: scores per dev set annotating it,
    and their mean (`dev_mean`, None unless scored on all of them)."""
    sets = label_sets(dev, label)
    # The label model is fitted on every subset for this set, on the other sets for its best few
    # of those that can be scored there (an LLM teacher's subsets are not: it labels one set).
    first = sets[0] if selection_set == DEV_MEAN else selection_set
    gold = {s: gold_spans(dev[s], label) for s in sets}
    out = []
    fits: list[tuple[dict[str, Any], str]] = []  # (result, dev set) whose label model is fitted below
    for subset in tqdm(subsets(teachers), desc=f"search {label}", unit="subset", leave=False):
        for strategy in ALL_STRATEGIES:
            scores: dict[str, Any] = {}
            result = {"subset": list(subset), "strategy": strategy, "scores": scores}
            for s in sets:
                if not all(present(dev[s], t) for t in subset):
                    scores[s] = None
                elif strategy == LABEL_MODEL and s != first:
                    scores[s] = "later"
                elif strategy == LABEL_MODEL:
                    scores[s] = None  # keeps the sets' order in the report
                    fits.append((result, s))
                else:
                    scores[s] = score_one(dev[s], label, subset, strategy, weights, gold[s])
            out.append(result)
    _fill_label_model_scores(dev, gold, label, fits)
    ranked = sorted(
        (r for r in out if "later" in r["scores"].values() and r["scores"].get(first)),
        key=lambda r: -r["scores"][first]["strict"]["f"],
    )
    top = {id(r) for r in ranked[:LABEL_MODEL_TOP_ON_OTHER_SETS]}
    if selection_set == DEV_MEAN:  # the leave-one-out report reads their means (+100 s for n = 10)
        later = {tuple(r["subset"]): r for r in ranked}
        for r in ranked[:LABEL_MODEL_TOP_ON_OTHER_SETS]:
            for t in r["subset"]:
                rest = later.get(tuple(x for x in r["subset"] if x != t))
                if rest is not None:
                    top.add(id(rest))
    later_fits = [(r, s) for r in out for s, v in r["scores"].items() if v == "later" and id(r) in top]
    _fill_label_model_scores(dev, gold, label, later_fits)
    for r in out:
        for s, v in r["scores"].items():
            if v == "later":
                r["scores"][s] = None
        f = [v["strict"]["f"] for v in r["scores"].values() if v]
        r["scores"][DEV_MEAN] = {"strict": {"f": round(sum(f) / len(f), 4)}} if len(f) == len(sets) else None
    return out


def strict_f(result: dict[str, Any] | None, set_name: str) -> float | None:
    if result is None:
        return 0.0  # no teacher of the subset names the label: nothing predicted
    s = result["scores"].get(set_name)
    return None if s is None else s["strict"]["f"]


def ranked(results: list[dict[str, Any]], selection_set: str) -> list[dict[str, Any]]:
    """A label's results scored on `selection_set`, best first: highest strict F1, ties to fewer
    teachers, then to the earlier strategy in ALL_STRATEGIES and the earlier subset."""
    scored = [(i, r) for i, r in enumerate(results) if r["scores"].get(selection_set)]
    scored.sort(
        key=lambda ir: (
            -ir[1]["scores"][selection_set]["strict"]["f"],
            len(ir[1]["subset"]),
            ALL_STRATEGIES.index(ir[1]["strategy"]),
            ir[0],
        )
    )
    return [r for _, r in scored]


def selection(result: dict[str, Any], selection_set: str) -> dict[str, Any]:
    return {
        "subset": result["subset"],
        "strategy": result["strategy"],
        "strict_f": result["scores"][selection_set]["strict"]["f"],
        "scores": result["scores"],
    }


def select(by_label: dict[str, list[dict[str, Any]]], selection_set: str) -> dict[str, dict[str, Any]]:
    """Per label, the best result on `selection_set` (`ranked`'s first)."""
    return {
        label: selection(ranked(results, selection_set)[0], selection_set)
        for label, results in by_label.items()
    }


# The search scores each label alone, but the corpus then resolves overlaps across labels (longest
# span first, `combine`): with `dev_mean`, the disease union's longer spans took MACCROBAT dev
# SYMPTOM from .352 to .316 (reports/experiments.md). So the best JOINT_TOP results per label are
# scored together, after that step, and the best mean over labels is kept. Written here: skweak and
# spaCy combine span groups, neither chooses among combinations.
JOINT_TOP = 5


def distinct(
    results: list[dict[str, Any]], selection_set: str, dev: dict[str, list[Doc]], sets: list[str], top: int
) -> list[dict[str, Any]]:
    """The best `top` results of a label that can be run on every one of `sets`, one per distinct
    score: one teacher's union, intersection and majority are the same spans."""
    out, seen = [], set()
    for r in ranked(results, selection_set):
        key = repr(sorted((s, v) for s, v in r["scores"].items() if v))
        if key in seen or not all(present(dev[s], t) for s in sets for t in r["subset"]):
            continue
        seen.add(key)
        out.append(r)
        if len(out) == top:
            break
    return out


def select_joint(
    dev: dict[str, list[Doc]],
    by_label: dict[str, list[dict[str, Any]]],
    weights: dict[str, dict[str, float]],
    selection_set: str,
    top: int = JOINT_TOP,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The selection, and how it was made: every choice of one of each label's `top` distinct results,
    scored on the selection set (`dev_mean`: each label on the dev sets annotating it, averaged)
    after the cross-label overlap step; ties go to the per-label ranks' sum, so the per-label
    choice stays unless another scores higher. Results whose teachers did not label a set that
    is scored are left out (an LLM teacher on the other dev sets)."""
    per_label = select(by_label, selection_set)
    labels = [label for label, results in by_label.items() if results]
    sets = {lb: label_sets(dev, lb) if selection_set == DEV_MEAN else [selection_set] for lb in labels}
    scored_sets = sorted({s for lb in labels for s in sets[lb]}, key=list(dev).index)
    candidates = {lb: distinct(by_label[lb], selection_set, dev, scored_sets, top) for lb in labels}
    info: dict[str, Any] = {
        "top": top,
        "sets": scored_sets,
        "per_label": {lb: {k: v for k, v in c.items() if k != "scores"} for lb, c in per_label.items()},
    }
    if any(
        not c or c[0]["subset"] != per_label[lb]["subset"] or c[0]["strategy"] != per_label[lb]["strategy"]
        for lb, c in candidates.items()
    ):
        info["skipped"] = "a per-label choice cannot be scored on every set"
        return per_label, info
    preds = {
        (lb, i, s): predictions(dev[s], lb, r["subset"], r["strategy"], weights.get(lb, {}))
        for lb in labels
        for i, r in enumerate(candidates[lb])
        for s in scored_sets
    }
    gold = {(lb, s): gold_spans(dev[s], lb) for lb in labels for s in sets[lb]}

    def mean_f(pick: tuple[int, ...]) -> tuple[float, dict[str, float]]:
        per: dict[str, float] = {}
        for s in scored_sets:
            merged = [
                merge_labels([sp for lb, i in zip(labels, pick, strict=True) for sp in preds[lb, i, s][d]])
                for d in range(len(dev[s]))
            ]
            for lb in labels:
                if s in sets[lb]:
                    own = [[sp for sp in m if sp.label_ == lb] for m in merged]
                    f = score_spans(zip(own, gold[lb, s], strict=True), [lb])[lb]["strict"]["f"]
                    per[lb] = per.get(lb, 0.0) + f / len(sets[lb])
        return sum(per.values()) / len(per), per

    picks = list(product(*(range(len(candidates[lb])) for lb in labels)))
    scores = {pick: mean_f(pick) for pick in tqdm(picks, desc="joint selection", unit="choice", leave=False)}
    best = max(picks, key=lambda p: (round(scores[p][0], 6), -sum(p)))
    first = tuple(0 for _ in labels)
    info.update(
        mean_per_label_choice=round(scores[first][0], 4),
        mean_joint_choice=round(scores[best][0], 4),
        changed=[lb for lb, i in zip(labels, best, strict=True) if i],
    )
    selected = dict(per_label)
    for lb, i in zip(labels, best, strict=True):
        selected[lb] = selection(candidates[lb][i], selection_set)
        selected[lb]["joint_f"] = round(scores[best][1][lb], 4)
    return selected, info


def expand(
    by_label: dict[str, list[dict[str, Any]]], teachers: Sequence[str], selection_set: str
) -> list[list[Any]]:
    """All (2^n - 1) x strategies results as rows [teachers joined by "+", strategy, strict F1 per
    label on the selection set] (the full scores of each per-label result are in `by_label`)."""
    index = {
        label: {(tuple(r["subset"]), r["strategy"]): r for r in results}
        for label, results in by_label.items()
    }
    names = {label: {t for r in results for t in r["subset"]} for label, results in by_label.items()}
    rows = []
    for subset in subsets(teachers):
        for strategy in ALL_STRATEGIES:
            row: list[Any] = ["+".join(subset), strategy]
            for label in by_label:
                reduced = tuple(t for t in subset if t in names[label])
                row.append(
                    strict_f(index[label].get((reduced, strategy)) if reduced else None, selection_set)
                )
            rows.append(row)
    return rows


def leave_one_out(
    by_label: dict[str, list[dict[str, Any]]], selected: dict[str, dict[str, Any]], selection_set: str
) -> dict[str, dict[str, Any]]:
    """Per label: what each teacher of the selected combination adds (its F1 minus the same
    strategy without that teacher), and per teacher the best F1 with and without it."""
    out: dict[str, dict[str, Any]] = {}
    for label, results in by_label.items():
        index = {(tuple(r["subset"]), r["strategy"]): r for r in results}
        sel = selected[label]
        drop = {}
        for t in sel["subset"]:
            rest = tuple(x for x in sel["subset"] if x != t)
            f = strict_f(index.get((rest, sel["strategy"])) if rest else None, selection_set)
            drop[t] = None if f is None else round(sel["strict_f"] - f, 4)
        teachers = sorted({t for r in results for t in r["subset"]})
        best = {}
        for t in teachers:
            with_t = [strict_f(r, selection_set) for r in results if t in r["subset"]]
            without = [strict_f(r, selection_set) for r in results if t not in r["subset"]]
            best[t] = {
                "best_with": max((f for f in with_t if f is not None), default=None),
                "best_without": max((f for f in without if f is not None), default=0.0),
            }
        out[label] = {"selected_minus_teacher": drop, "best_with_without": best}
    return out
