"""Step `ablation`: the distilled student under each setting of configs/ablation.cfg (partial-label
rule, the dev set that selects model-best, self-training rounds), same seed and step budget,
scored on every gold test set with the teachers and the human-label student beside it ->
reports/distillation_ablation.{json,md}. A variant whose model is already trained with the same
settings is reused, so an interrupted run resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from spacy.util import load_config, registry

from ..combine.distil import write_distilled_corpus
from ..combine.inputs import read_calibration
from ..combine.partial import dropped_terms
from ..evaluation import evaluate
from ..labels import GOLD_LABELS
from ..reports import write_report
from .self_training import self_train


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
    models = {}
    for name, spec in variants.items():
        out = work / name
        stamp = out / "variant.json"
        want = {**spec, "overrides": {k: str(v) for k, v in overrides.items()}}
        if name in (reuse or {}) and not (out / "model-best").exists():
            shutil.copytree(reuse[name], out, dirs_exist_ok=True)
            stamp.write_text(json.dumps({**want, "reused": str(reuse[name])}, indent=2) + "\n")
        done = (
            stamp.exists()
            and {k: v for k, v in json.loads(stamp.read_text()).items() if k != "reused"} == want
        )
        if not (done and (out / "model-best").exists()):
            args = spec.get("rule_args", {})
            suffix = "".join(f"-{k}={v}" for k, v in sorted(args.items()))
            corpus = work / "corpus" / f"{spec['partial_labels']}{suffix}"
            if not (corpus / "train.spacy").exists():
                rule = registry.misc.get(spec["partial_labels"])(**args)
                write_distilled_corpus(out_dir=corpus, report=corpus / "stats.json", rule=rule, **corpus_args)
            dev = gold_dev if spec["dev"] == "gold" else corpus / "dev.spacy"
            self_train(
                config,
                out,
                corpus / "train.spacy",
                dev,
                dict(overrides),
                spec["rounds"],
                spec["threshold"],
                drops,
            )
            stamp.write_text(json.dumps(want, indent=2) + "\n")
        models[name] = out / "model-best"
    return models


def _f1(s: dict[str, Any], bold: bool = False) -> str:
    f = f"**{s['f']:.3f}**" if bold else f"{s['f']:.3f}"
    return f"{f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"


def write_ablation(
    results: dict[str, Any], variants: dict[str, dict[str, Any]], work: Path, report: Path
) -> None:
    """Per variant, set and label: strict and lenient F1 with intervals, and strict F1 minus the
    baseline's and the teachers'."""
    rounds = {}
    for name in variants:
        path = work / name / "self_training.json"
        if path.exists():
            rounds[name] = json.loads(path.read_text())
    rows = []
    base = next(iter(variants))
    for name, by_set in results.items():
        for s, labels in by_set.items():
            for label in GOLD_LABELS[s.removesuffix("_test")]:
                sc = labels[label]
                f = sc["strict"]["f"]
                rows.append(
                    [
                        name,
                        s,
                        label,
                        _f1(sc["strict"], bold=True),
                        _f1(sc["lenient"]),
                        f"{f - results[base][s][label]['strict']['f']:+.3f}" if name in variants else "",
                        f"{f - results['teachers'][s][label]['strict']['f']:+.3f}"
                        if name != "teachers"
                        else "",
                    ]
                )
    settings = [
        "",
        "## Settings and self-training rounds",
        "",
        *(
            f"- `{n}`: {v['partial_labels']} {v.get('rule_args', '')}, dev {v['dev']}, rounds {v['rounds']}"
            f" (threshold {v['threshold']})"
            + (
                "; gold dev ents_f per round "
                + ", ".join(
                    f"{h['round']}: {h['dev_ents_f']:.3f} (+{sum(h['added'].values())} spans)"
                    for h in r["history"]
                )
                + f"; kept round {r['best_round']}"
                if (r := rounds.get(n))
                else ""
            )
            for n, v in variants.items()
        ),
    ]
    intro = (
        "Written by `weasel run ablation` (configs/ablation.cfg): the distilled student under each setting,\n"
        "same seed and step budget, on the gold test sets (bootstrap 95% intervals, documents resampled).\n"
        f"`teachers`: the selected combination; `human`: the human-label student. Deltas are strict F1\n"
        f"minus `{base}`'s and minus the teachers'. Gold labels are used on dev only (model selection,\n"
        "early stopping), never to train a distilled student."
    )
    header = [
        "model",
        "test set",
        "label",
        "strict F1 [95% CI]",
        "lenient F1 [95% CI]",
        f"- {base}",
        "- teachers",
    ]
    data = {"variants": variants, "self_training": rounds, "results": results}
    write_report(report, data, "Distillation ablation", intro, header, rows, after=settings)


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
    results = evaluate(
        gold_dir,
        corpus_args["labelled_dir"],
        corpus_args["combinations"],
        work / "evaluation.json",
        models,
        limit=limit,
        llm_dir=corpus_args.get("llm_dir"),
        calibration=corpus_args.get("calibration"),
    )
    write_ablation(results, variants, work, report)
    return results
