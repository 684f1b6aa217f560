"""Step `ablation`: the distilled student under each setting of configs/ablation.cfg (partial-label
rule, the dev set that selects model-best, self-training rounds), the same seeds and step budget,
scored on every gold test set with the teachers and the human-label student beside it ->
reports/distillation_ablation.{json,md}. A variant whose model is already trained with the same
settings, student config and corpus inputs (by content) is reused, so an interrupted run resumes
and a changed config or teacher corpus retrains."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from statistics import fmean
from typing import Any

from spacy.util import load_config, registry

from ..combine.distil import write_distilled_corpus
from ..combine.inputs import read_calibration
from ..combine.partial import dropped_terms
from ..evaluation import FOLDED, evaluate, paired_differences
from ..labels import GOLD_LABELS
from ..reports import markdown_table, write_report
from .self_training import self_train


def fingerprint(paths: list[Path | None]) -> str:
    """SHA-256 over the files at `paths` (folders: every file under them, by relative name)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is None or not Path(path).exists():
            digest.update(b"-")
            continue
        path = Path(path)
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
        for f in files:
            digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def run_variants(
    variants: dict[str, dict[str, Any]],
    work: Path,
    corpus_args: dict[str, Any],
    gold_dev: Path,
    overrides: dict[str, Any],
    config: Path,
    reuse: dict[str, Path] | None = None,
    corpus_dir: Path | None = None,
) -> dict[str, Path]:
    """Train every variant under `work` (reusing finished ones, and `reuse`: {variant: a
    train-distilled output trained with the same settings}; the corpora under `corpus_dir`,
    default work/corpus); returns {variant: model-best}."""
    drops = dropped_terms(read_calibration(corpus_args.get("calibration")))
    inputs = fingerprint([corpus_args[k] for k in ("labelled_dir", "combinations", "calibration", "llm_dir")])
    package = Path(__file__).parents[1]
    trained_by = {
        "config": fingerprint([config]),
        "inputs": inputs,
        "gold_dev": fingerprint([gold_dev]),
        "stop_list": fingerprint([overrides.get("paths.stop_list")]),
        # the code that builds the corpus and trains (not this module's reporting)
        "code": fingerprint(
            [
                package / "combine",
                *(
                    package / "student" / f
                    for f in ("self_training.py", "windows.py", "backbone.py", "stop_terms.py")
                ),
            ]
        ),
    }
    models = {}
    for name, spec in variants.items():
        out = work / name
        stamp = out / "variant.json"
        want = {**spec, "overrides": {k: str(v) for k, v in overrides.items()}, **trained_by}
        done = (
            stamp.exists()
            and {k: v for k, v in json.loads(stamp.read_text()).items() if k != "reused"} == want
        )
        if not done and name in (reuse or {}):
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(reuse[name], out)
            stamp.write_text(json.dumps({**want, "reused": str(reuse[name])}, indent=2) + "\n")
            done = True
        if not (done and (out / "model-best").exists()):
            # training rewrites out/round0 in place: an interrupted run must not leave the old
            # stamp valid beside a half-trained round 0 (later variants copy it as theirs)
            stamp.unlink(missing_ok=True)
            args = spec.get("rule_args", {})
            suffix = "".join(f"-{k}={v}" for k, v in sorted(args.items()))
            corpus = (corpus_dir or work / "corpus") / f"{spec['partial_labels']}{suffix}"
            corpus_stamp = corpus / "inputs.sha256"
            corpus_key = f"{inputs} {trained_by['code']}"
            built = corpus_stamp.exists() and corpus_stamp.read_text().strip() == corpus_key
            if not (built and (corpus / "train.spacy").exists()):
                rule = registry.misc.get(spec["partial_labels"])(**args)
                write_distilled_corpus(out_dir=corpus, report=corpus / "stats.json", rule=rule, **corpus_args)
                corpus_stamp.write_text(corpus_key + "\n")
            dev = gold_dev if spec["dev"] == "gold" else corpus / "dev.spacy"
            # a finished variant with the same corpus and dev set is this one's round 0
            key = (spec["partial_labels"], spec.get("rule_args"), spec["dev"])
            same = [
                work / n / "round0"
                for n in models
                if (variants[n]["partial_labels"], variants[n].get("rule_args"), variants[n]["dev"]) == key
            ]
            self_train(
                config,
                out,
                corpus / "train.spacy",
                dev,
                dict(overrides),
                spec["rounds"],
                spec["threshold"],
                drops,
                round0=next((p for p in same if (p / "model-best").exists()), None),
            )
            stamp.write_text(json.dumps(want, indent=2) + "\n")
        models[name] = out / "model-best"
    return models


def _f1(s: dict[str, Any]) -> str:
    return f"{s['f']:.3f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"


# the cells whose dev mean chooses the default; the tables also show the folded cells (evaluation.FOLDED)
CELLS = [(s, label) for s, labels in GOLD_LABELS.items() for label in labels]
SHOWN = CELLS + [(s, cell) for s, cells in FOLDED.items() for cell in cells]
CELL_NAMES = [f"{s} {label}" for s, label in SHOWN]


def run_name(variant: str, seed: int) -> str:
    """The results' key of one variant trained with one seed."""
    return f"{variant}@{seed}"


def _run_keys(results: dict[str, Any], name: str, seeds: list[int]) -> list[str]:
    """A variant's result keys, one per seed; the teachers' and the human student's own name, once."""
    return [name] if name in results else [run_name(name, s) for s in seeds]


def _runs(results: dict[str, Any], name: str, seeds: list[int]) -> list[dict[str, Any]]:
    return [results[k] for k in _run_keys(results, name, seeds)]


def _strict(runs: list[dict[str, Any]], split: str, s: str, label: str) -> list[float]:
    return [r[f"{s}_{split}"][label]["strict"]["f"] for r in runs]


def _spread(xs: list[float], signed: bool = False) -> str:
    """Mean (lowest-highest); signed differences get "+" and " to " between the ends."""
    sign, sep = ("+", " to ") if signed else ("", "-")
    ends = f" ({min(xs):{sign}.2f}{sep}{max(xs):{sign}.2f})" if len(xs) > 1 else ""
    return f"{fmean(xs):{sign}.3f}{ends}"


def dev_means(results: dict[str, Any], names: list[str], seeds: list[int]) -> dict[str, list[float]]:
    """Per model, its mean gold dev strict F1 over the per-label cells, one value per seed."""
    return {
        name: [
            fmean([r[f"{s}_dev"][label]["strict"]["f"] for s, label in CELLS])
            for r in _runs(results, name, seeds)
        ]
        for name in names
    }


def technique_effects(
    results: dict[str, Any],
    effects: dict[str, list[str]],
    seeds: list[int],
    counts: dict[str, dict[str, list[Any]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per technique, its variant minus its control trained with the same seed: strict F1 on each
    test cell and the gold dev cell mean, one difference per seed (the seed is shared, so what
    differs is the technique alone). With the per-document test `counts`, also the paired bootstrap
    95% interval of the mean difference over seeds (`test_ci95`): the same test documents are
    drawn for every seed's variant and control, so it is the spread due to which notes were tested."""

    def minus(a: list[float], b: list[float]) -> list[float]:
        return [round(x - y, 4) for x, y in zip(a, b, strict=True)]

    out = {}
    for name, (variant, control) in effects.items():
        v, c = _runs(results, variant, seeds), _runs(results, control, seeds)
        dev = dev_means(results, [variant, control], seeds)
        out[name] = {
            "variant": variant,
            "control": control,
            "test": {
                f"{s} {lb}": minus(_strict(v, "test", s, lb), _strict(c, "test", s, lb)) for s, lb in SHOWN
            },
            "dev_mean": minus(dev[variant], dev[control]),
        }
        if counts:
            # both are variants (write_ablation keeps only those), so each has one key per seed
            keys = zip(_run_keys(results, variant, seeds), _run_keys(results, control, seeds), strict=True)
            paired = paired_differences(counts, {name: list(keys)})[name]
            ci = {f"{s} {lb}": paired[f"{s}_test"][lb]["strict"]["ci95"] for s, lb in SHOWN}
            out[name]["test_ci95"] = ci
    return out


def write_ablation(
    results: dict[str, Any],
    variants: dict[str, dict[str, Any]],
    seeds: list[int],
    work: Path,
    report: Path,
    effects: dict[str, list[str]] | None = None,
    counts: dict[str, dict[str, list[Any]]] | None = None,
) -> None:
    """Per variant, over its seeds: mean strict F1 on each gold test set and label (with the lowest
    and highest seed), minus the teachers', and strict F1 on the gold dev sets (what chooses the
    default); each technique's effect against its control at the same seed (`effects`: name ->
    [variant, control]; with per-document test `counts`, a paired bootstrap interval); per seed,
    strict and lenient F1 with bootstrap intervals and the self-training rounds."""
    names = ["teachers", *variants, *(n for n in results if n == "human")]
    header = ["model", *CELL_NAMES]
    by_name = {name: _runs(results, name, seeds) for name in names}
    mean = [[name, *(_spread(_strict(by_name[name], "test", s, lb)) for s, lb in SHOWN)] for name in names]
    teachers = by_name["teachers"][0]
    gap = {(s, lb): teachers[f"{s}_test"][lb]["strict"]["f"] for s, lb in SHOWN}
    delta = [
        [name, *(f"{fmean(_strict(by_name[name], 'test', s, lb)) - gap[s, lb]:+.3f}" for s, lb in SHOWN)]
        for name in names[1:]
    ]
    dev_mean = dev_means(results, names, seeds)
    dev = [
        [
            name,
            *(f"{fmean(_strict(by_name[name], 'dev', s, lb)):.3f}" for s, lb in SHOWN),
            " / ".join(f"{x:.3f}" for x in dev_mean[name]),
            f"{fmean(dev_mean[name]):.3f}",
        ]
        for name in names
    ]
    ranked = sorted(variants, key=lambda n: -fmean(dev_mean[n]))
    best = fmean(dev_mean[ranked[0]])
    choice = [f"Highest gold dev mean: `{ranked[0]}` ({best:.3f} over {len(seeds)} seed(s))."]
    if len(ranked) > 1:
        spread = max(max(v) - min(v) for n, v in dev_mean.items() if n in variants)
        choice[0] += (
            f" `{ranked[1]}` next, {best - fmean(dev_mean[ranked[1]]):.3f} below. The widest range"
            f" between one variant's seeds is {spread:.3f}: a smaller lead is not a measured difference."
        )
    seeded = [(run_name(n, sd), n, sd) for n in variants for sd in seeds]
    keys = [names[0], *(key for key, *_ in seeded), *names[1 + len(variants) :]]

    def with_intervals(kind: str) -> list[list[str]]:
        return [[key, *(_f1(results[key][f"{s}_test"][lb][kind]) for s, lb in SHOWN)] for key in keys]

    effect = technique_effects(
        results, {k: v for k, v in (effects or {}).items() if set(v) <= set(variants)}, seeds, counts
    )

    def interval(e: dict[str, Any], cell: str) -> str:
        ci = e.get("test_ci95", {}).get(cell)
        return f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""

    effect_rows = [
        [
            f"{name} (`{e['variant']}` - `{e['control']}`)",
            *(_spread(e["test"][cell], signed=True) + interval(e, cell) for cell in CELL_NAMES),
            _spread(e["dev_mean"], signed=True),
        ]
        for name, e in effect.items()
    ]
    rounds = {}
    for key, name, sd in seeded:
        path = work / f"seed{sd}" / name / "self_training.json"
        if path.exists():
            rounds[key] = json.loads(path.read_text())
    after = [
        "",
        "## Test, strict F1 (mean over seeds) minus the teachers' (the selected combination)",
        "",
        *markdown_table(header, delta),
        "",
        *(
            [
                "## Each technique's effect: test strict F1 of its variant minus its control trained with"
                " the same seed, mean over seeds (lowest to highest) [paired bootstrap 95% CI of the mean"
                " over resampled test documents]; last column: the gold dev cell mean",
                "",
                *markdown_table(["technique", *CELL_NAMES, "gold dev mean"], effect_rows),
                "",
            ]
            if effect_rows
            else []
        ),
        "## Gold dev, strict F1, mean over seeds (selection; MACCROBAT dev also chose model-best for the"
        " `gold` variants); the mean over the per-label cells per seed and over seeds",
        "",
        *markdown_table([*header, "cell mean per seed", "mean"], dev),
        "",
        *choice,
        "",
        "## Test, strict F1 [95% CI] per seed",
        "",
        *markdown_table(header, with_intervals("strict")),
        "",
        "## Test, lenient F1 [95% CI] per seed",
        "",
        *markdown_table(header, with_intervals("lenient")),
        "",
        "## Settings and self-training rounds",
        "",
    ]
    for n, v in variants.items():
        rule = v["partial_labels"] + (f" {v['rule_args']}" if v.get("rule_args") else "")
        threshold = f", threshold {v['threshold']}" if v["rounds"] else ""
        after.append(f"- `{n}`: {rule}, dev {v['dev']}, rounds {v['rounds']}{threshold}")
        for sd in seeds:
            key = run_name(n, sd)
            line = f"  - seed {sd}"
            if (r := rounds.get(key)) and v["rounds"]:
                line += ": ents_f on its dev set per round " + ", ".join(
                    f"{h['round']}: {h['dev_ents_f']:.3f} (+{sum(h['added'].values())} spans {h['added']})"
                    for h in r["history"]
                )
                line += f"; kept round {r['best_round']}"
            elif r:
                line += f": ents_f on its dev set {r['history'][0]['dev_ents_f']:.3f}"
            stamp = work / f"seed{sd}" / n / "variant.json"
            if stamp.exists() and (reused := json.loads(stamp.read_text()).get("reused")):
                line += f"; trained by `train-distilled` with these settings ({reused}), reused"
            after.append(line)
    intro = (
        "Written by `weasel run ablation` (configs/ablation.cfg): the distilled student under each\n"
        f"setting, trained once per seed ({', '.join(map(str, seeds))}) on the same step budget, scored\n"
        "on the gold test sets. The first table is each variant's strict F1 averaged over its seeds\n"
        "(lowest and highest seed in brackets): another seed of the same student moves single cells by\n"
        'several hundredths (reports/experiments.md, "Seed variance"). The per-seed tables add\n'
        "bootstrap 95% intervals over test documents. `teachers`: the selected combination; `human`:\n"
        "the human-label student. Gold labels are used on dev only (model selection, early stopping,\n"
        "choosing the default), never to train a distilled student."
    )
    data = {
        "variants": variants,
        "seeds": seeds,
        "dev_mean": {n: [round(x, 4) for x in v] for n, v in dev_mean.items()},
        "highest_dev_mean": ranked[0],
        "effects": effect,
        "self_training": rounds,
        "results": results,
    }
    write_report(report, data, "Distillation ablation", intro, header, mean, after=after)


def ablation(
    config: Path,
    ablation_cfg: Path,
    work: Path,
    report: Path,
    corpus_args: dict[str, Any],
    gold_dir: Path,
    human: Path | None,
    overrides: dict[str, Any],
    limit: int = 0,
    reuse: dict[str, Path] | None = None,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Each variant of `ablation_cfg` trained with each of its `[ablation] seeds` (the student
    config's own `[system] seed` when none are given) under work/seed<N>/<variant>, then scored."""
    cfg = load_config(ablation_cfg)
    variants = {k: dict(v) for k, v in cfg["variants"].items() if not only or k in only}
    own_seed = int(load_config(config)["system"]["seed"])
    seeds = [int(s) for s in cfg.get("ablation", {}).get("seeds", [own_seed])]
    models: dict[str, Path] = {}
    for seed in seeds:
        # the config's own seed is no override, so its variants match train-distilled's (reuse)
        seeded = overrides if seed == own_seed else {**overrides, "system.seed": seed}
        trained = run_variants(
            variants,
            work / f"seed{seed}",
            corpus_args,
            gold_dir / "maccrobat_dev.spacy",
            seeded,
            config,
            reuse if seed == own_seed else None,
            corpus_dir=work / "corpus",
        )
        models.update({run_name(n, seed): path for n, path in trained.items()})
    if human:
        models["human"] = human
    common = {
        "models": models,
        "limit": limit,
        "llm_dir": corpus_args.get("llm_dir"),
        "calibration": corpus_args.get("calibration"),
    }
    labelled, combinations = corpus_args["labelled_dir"], corpus_args["combinations"]
    # dev decides which setting becomes the default (gold test sets are for the final report)
    dev = evaluate(gold_dir, labelled, combinations, None, split="dev", **common)
    counts: dict[str, dict[str, list[Any]]] = {}
    results = evaluate(gold_dir, labelled, combinations, work / "evaluation.json", counts=counts, **common)
    for name in results:
        results[name] = {**dev[name], **results[name]}
    effects = {k: list(v) for k, v in cfg.get("effects", {}).items()}
    write_ablation(results, variants, seeds, work, report, effects, counts)
    return results
