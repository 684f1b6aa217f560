"""Step `ablation`: the distilled student under each setting of configs/ablation.cfg (partial-label
rule, the dev set that selects model-best, self-training rounds), same seed and step budget,
scored on every gold test set with the teachers and the human-label student beside it ->
reports/distillation_ablation.{json,md}. A variant whose model is already trained with the same
settings, student config and corpus inputs (by content) is reused, so an interrupted run resumes
and a changed config or teacher corpus retrains."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from spacy.util import load_config, registry

from ..combine.distil import write_distilled_corpus
from ..combine.inputs import read_calibration
from ..combine.partial import dropped_terms
from ..evaluation import FOLDED, evaluate
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
) -> dict[str, Path]:
    """Train every variant (reusing finished ones, and `reuse`: {variant: a train-distilled output
    trained with the same settings}); returns {variant: model-best}."""
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
            args = spec.get("rule_args", {})
            suffix = "".join(f"-{k}={v}" for k, v in sorted(args.items()))
            corpus = work / "corpus" / f"{spec['partial_labels']}{suffix}"
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


def _table(results: dict[str, Any], split: str, cell) -> list[list[str]]:
    return [
        [name, *(cell(by_set[f"{s}_{split}"][label], name, s, label) for s, label in SHOWN)]
        for name, by_set in results.items()
    ]


def write_ablation(
    results: dict[str, Any], variants: dict[str, dict[str, Any]], work: Path, report: Path
) -> None:
    """Per variant: strict F1 with intervals on each gold test set and label, minus the teachers',
    lenient F1, and strict F1 on the gold dev sets (what chooses the default)."""
    rounds = {}
    for name in variants:
        path = work / name / "self_training.json"
        if path.exists():
            rounds[name] = json.loads(path.read_text())
    teachers = results["teachers"]
    header = ["model", *CELL_NAMES]
    strict = _table(results, "test", lambda sc, *_: _f1(sc["strict"]))
    delta = _table(
        {k: v for k, v in results.items() if k != "teachers"},
        "test",
        lambda sc, name, s, label: f"{sc['strict']['f'] - teachers[f'{s}_test'][label]['strict']['f']:+.3f}",
    )
    lenient = _table(results, "test", lambda sc, *_: _f1(sc["lenient"]))
    dev = _table(results, "dev", lambda sc, *_: f"{sc['strict']['f']:.3f}")
    for row, name in zip(dev, results, strict=True):
        row.append(
            f"{sum(results[name][f'{s}_dev'][label]['strict']['f'] for s, label in CELLS) / len(CELLS):.3f}"
        )
    after = [
        "",
        "## Test, strict F1 minus the teachers' (the selected combination)",
        "",
        *markdown_table(header, delta),
        "",
        "## Test, lenient F1 [95% CI]",
        "",
        *markdown_table(header, lenient),
        "",
        "## Gold dev, strict F1 (selection; MACCROBAT dev also chose model-best for the `gold` variants;"
        " mean over the per-label cells)",
        "",
        *markdown_table([*header, "mean"], dev),
        "",
        "## Settings and self-training rounds",
        "",
    ]
    for n, v in variants.items():
        line = (
            f"- `{n}`: {v['partial_labels']} {v.get('rule_args', '')}, dev {v['dev']}, rounds {v['rounds']}"
        )
        if r := rounds.get(n):
            line += f" (threshold {v['threshold']}); ents_f on its dev set per round " + ", ".join(
                f"{h['round']}: {h['dev_ents_f']:.3f} (+{sum(h['added'].values())} spans {h['added']})"
                for h in r["history"]
            )
            line += f"; kept round {r['best_round']}"
        stamp = work / n / "variant.json"
        if stamp.exists() and (reused := json.loads(stamp.read_text()).get("reused")):
            line += f"; trained by `train-distilled` with these settings ({reused}), reused"
        after.append(line)
    intro = (
        "Written by `weasel run ablation` (configs/ablation.cfg): the distilled student under each\n"
        "setting, same seed and step budget, on the gold test sets (strict F1, bootstrap 95% intervals\n"
        "over documents). The intervals are the test documents' sampling only: one training per variant,\n"
        "and another seed of the same student moves single cells by several hundredths (reports/\n"
        'experiments.md, "Seed variance"), more than most differences between variants.\n'
        "`teachers`: the selected combination; `human`: the human-label student. Gold labels are used on\n"
        "dev only (model selection, early stopping), never to train a distilled student."
    )
    data = {"variants": variants, "self_training": rounds, "results": results}
    write_report(report, data, "Distillation ablation", intro, header, strict, after=after)


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
    variants = {k: dict(v) for k, v in load_config(ablation_cfg)["variants"].items() if not only or k in only}
    models = run_variants(
        variants, work, corpus_args, gold_dir / "maccrobat_dev.spacy", overrides, config, reuse
    )
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
    results = evaluate(gold_dir, labelled, combinations, work / "evaluation.json", **common)
    for name in results:
        results[name] = {**dev[name], **results[name]}
    write_ablation(results, variants, work, report)
    return results
