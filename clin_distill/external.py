"""Step `evaluate-external`: a model on the user's own gold set -> reports/external.{json,md}.

The project's strict and lenient per-label P/R/F1 with bootstrap 95% intervals (`scoring`, as
`evaluate` reports the public test sets), beside the output of `spacy evaluate` on the same DocBin,
so the numbers can be checked against spaCy's own scorer. Only counts and scores are written: no
note text, no document ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import spacy
from spacy.tokens import DocBin

from .corpora.stats import CorpusStats
from .labels import LABELS
from .reports import write_report
from .scoring import bootstrap, doc_counts, prf
from .student import windows  # registers the student's encoder for spacy.load

SPACY_KEYS = ("ents_p", "ents_r", "ents_f", "ents_per_type")


def spacy_evaluate(model: str, gold: Path) -> dict[str, Any]:
    """`python -m spacy evaluate MODEL GOLD --output X.json`: its NER scores.

    `--code` registers the student's encoder for a model directory (`training/.../model-best`); a
    packaged model brings its own copy of that code and registers it again, which is harmless.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.json"
        cmd = [sys.executable, "-m", "spacy", "evaluate", model, str(gold), "--output", str(out)]
        cmd += ["--code", windows.__file__]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            # spaCy's error, not the notes: its tracebacks name files, components and settings.
            raise RuntimeError(f"spacy evaluate failed ({result.returncode}): {result.stderr[-2000:]}")
        scores = json.loads(out.read_text())
    return {key: scores.get(key) for key in SPACY_KEYS}


def micro(total: Counter, labels: Sequence[str]) -> dict[str, Any]:
    """Strict P/R/F1 over `labels` together, with the counts behind them.

    Over all three labels this is what `spacy evaluate` reports as ents_p/ents_r/ents_f when the
    model predicts only these labels: spaCy counts every predicted entity of any label and every gold
    entity, exactly, by tokens and label, as `doc_counts` does (so a label the gold does not annotate
    adds false positives)."""
    tp, n_pred, n_gold = (sum(total[label, key] for label in labels) for key in ("tp", "np", "ng"))
    return {
        **prf(tp, n_pred, tp, n_gold),
        "labels": list(labels),
        "tp": tp,
        "n_pred": n_pred,
        "n_gold": n_gold,
    }


def evaluate_external(
    gold: Path, model: str, report: Path, conversion: CorpusStats | None = None, n_boot: int = 1000
) -> dict[str, Any]:
    """Score `model` (a package name or a pipeline directory) on the gold DocBin; write the report."""
    nlp = spacy.load(model)
    docs = list(DocBin().from_disk(gold).get_docs(nlp.vocab))
    predicted = nlp.pipe(d.text for d in docs)
    per_doc = [doc_counts(list(p.ents), list(g.ents), LABELS) for p, g in zip(predicted, docs, strict=True)]
    total = sum(per_doc, Counter())
    gold_labels = [label for label in LABELS if total[label, "ng"]]
    data: dict[str, Any] = {
        "model": model,
        "gold": str(gold),
        "docs": len(docs),
        "mentions": {label: total[label, "ng"] for label in LABELS},
        "gold_labels": gold_labels,
        "scores": bootstrap(per_doc, LABELS, n=n_boot),
        "counts": {label: {k: total[label, k] for k in ("tp", "np", "ng", "hp", "hg")} for label in LABELS},
        "micro_strict": micro(total, LABELS),
        "micro_strict_gold_labels": micro(total, gold_labels),
        "spacy_evaluate": spacy_evaluate(model, gold),
    }
    if conversion is not None:
        c = conversion.to_dict()
        data["conversion"] = {
            "source_labels": c["raw_types"],
            "dropped_labels": c["ignored_types"],
            "skipped": c["skipped"],
            "adjustments": c["adjustments"],
        }
    write_reports(data, report)
    return data


def fmt(s: dict[str, Any]) -> str:
    return f"{s['p']:.3f}/{s['r']:.3f}/**{s['f']:.3f}** [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]"


def write_reports(data: dict[str, Any], report: Path) -> None:
    rows = []
    for label, s in data["scores"].items():
        if label in data["gold_labels"]:
            rows.append([label, f"{data['mentions'][label]:,}", fmt(s["strict"]), fmt(s["lenient"])])
        else:
            rows.append([label, "0", f"not in the gold ({data['counts'][label]['np']:,} predicted)", "-"])
    for key, name in (("micro_strict_gold_labels", "labels in the gold"), ("micro_strict", "all labels")):
        m = data[key]
        rows.append(
            [f"micro, {name}", f"{m['n_gold']:,}", f"{m['p']:.3f}/{m['r']:.3f}/**{m['f']:.3f}**", "-"]
        )
    sp = data["spacy_evaluate"]
    after = [
        "",
        f"`spacy evaluate` on the same DocBin: ents_p {_num(sp['ents_p'])}, ents_r {_num(sp['ents_r'])},"
        f" ents_f {_num(sp['ents_f'])} (strict over all labels, as the `micro, all labels` row).",
    ]
    conv = data.get("conversion")
    if conv:
        dropped = ", ".join(f"{k} {v:,}" for k, v in conv["dropped_labels"].items()) or "none"
        skipped = ", ".join(f"{k} {v:,}" for k, v in conv["skipped"].items() if v) or "none"
        after += ["", f"Dropped (unmapped) labels: {dropped}. Skipped: {skipped}."]
    intro = (
        f"Written by `weasel run evaluate-external`: model `{data['model']}` on {data['docs']:,} documents"
        f" of `{data['gold']}`. P/R/F1 with bootstrap 95% interval of F1 (documents resampled).\n"
        "A label without gold mentions is not scored; `micro, all labels` counts its predictions as false"
        " positives, as spaCy does."
    )
    header = ["label", "gold mentions", "strict P/R/F1 [95% CI]", "lenient P/R/F1 [95% CI]"]
    write_report(report, data, "Evaluation on your own gold set", intro, header, rows, after=after)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
