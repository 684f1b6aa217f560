"""Step `evaluate`: students and the selected teacher combination on the gold test sets.

Writes reports/evaluation.json (strict and lenient P/R/F1 per label with bootstrap 95% intervals),
reports/evaluation_differences.json (each student minus the teachers, human minus distilled: paired
bootstrap intervals), reports/evaluation.md, reports/evaluation.png and reports/evaluation.html
(plot + displaCy views of a few MACCROBAT test notes: gold, teachers, students).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib
import spacy
from spacy import displacy
from spacy.tokens import Doc, DocBin, Span

from .combine.inputs import load_docs, read_calibration
from .combine.strategies import combine
from .labels import DISEASE, GOLD_LABELS, LABELS, SYMPTOM
from .reports import fmt_diff, markdown_table, write_report
from .scoring import bootstrap, doc_counts, paired_bootstrap
from .student.windows import ARCHITECTURE  # noqa: F401  (registers the student's encoder for spacy.load)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Gold labels that cover two of ours. BC5CDR's Disease includes signs and symptoms (seizures,
# hypotension, pain and headache are gold Disease there, with MeSH ids), which our scheme and MACCROBAT
# call SYMPTOM. Evaluation adds one cell per entry, scoring DISEASE and SYMPTOM predictions together
# against that gold label, beside the per-label cells (labels.GOLD_LABELS), which stay as they are.
FOLDED: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "bc5cdr": {f"{DISEASE}+{SYMPTOM}": (DISEASE, (DISEASE, SYMPTOM))},
}


def cells_of(set_name: str) -> list[str]:
    """A gold set's scored cells: its labels, then its folded cells."""
    return [*GOLD_LABELS[set_name], *FOLDED.get(set_name, {})]


COLORS = {"MEDICATION": "#8fd19e", "DISEASE": "#f4a582", "SYMPTOM": "#92c5de"}


def evaluate(
    gold_dir: Path,
    labelled_dir: Path,
    combinations: Path,
    report: Path | None,
    models: dict[str, Path],
    n_boot: int = 1000,
    show_docs: int = 3,
    limit: int = 0,
    llm_dir: Path | None = None,
    calibration: Path | None = None,
    split: str = "test",
    counts: dict[str, dict[str, list[Counter]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score every model and the selected teacher combination on each gold test set (or `split`;
    its first `limit` documents when limit > 0, for quick runs); write the JSON/Markdown report,
    the paired differences, the plot and the HTML page beside `report` unless it is None. Returns
    the scores; `counts`, when given, receives each model's per-document counts per set."""
    vocab = spacy.blank("en").vocab
    combo = json.loads(combinations.read_text())
    choice = {label: (s["subset"], s["strategy"]) for label, s in combo["selected"].items()}
    n = limit or None
    gold = {
        s: list(DocBin().from_disk(gold_dir / f"{s}_{split}.spacy").get_docs(vocab))[:n] for s in GOLD_LABELS
    }
    predictions: dict[str, dict[str, list[list[Span]]]] = {"teachers": {}}
    # the folded cells' predictions, where they differ from `predictions` (teachers only)
    wider: dict[str, dict[str, list[list[Span]]]] = {"teachers": {}}
    table = read_calibration(calibration)
    for s in GOLD_LABELS:
        labelled = load_docs(labelled_dir, f"{s}_{split}", llm_dir, table)[:n]
        # Only the labels this set annotates: a label model is fitted per label on these docs.
        annotated = {label: c for label, c in choice.items() if label in GOLD_LABELS[s]}
        predictions["teachers"][s] = combine(labelled, annotated, combo["weights"])
        if s in FOLDED:
            folded = {label for _, ours in FOLDED[s].values() for label in ours}
            more = {label: c for label, c in choice.items() if label in annotated or label in folded}
            wider["teachers"][s] = combine(labelled, more, combo["weights"])
    for name, path in models.items():
        nlp = spacy.load(path)
        predictions[name] = {
            s: [list(d.ents) for d in nlp.pipe(d.text for d in docs)] for s, docs in gold.items()
        }
    results: dict[str, dict[str, Any]] = {}
    counts = {} if counts is None else counts
    for name, by_set in predictions.items():
        results[name], counts[name] = {}, {}
        for s, preds in by_set.items():
            per_doc = [doc_counts(p, g.ents, GOLD_LABELS[s]) for p, g in zip(preds, gold[s], strict=True)]
            folded_preds = wider.get(name, {}).get(s, preds)
            for i, (p, g) in enumerate(zip(folded_preds, gold[s], strict=True)):
                per_doc[i] += folded_counts(p, g.ents, s)
            results[name][f"{s}_{split}"] = bootstrap(per_doc, cells_of(s), n=n_boot)
            counts[name][f"{s}_{split}"] = per_doc
    if report is None:
        return results
    compared = {f"{m} - teachers": [(m, "teachers")] for m in models}
    if {"human", "distilled"} <= set(models):
        compared["human - distilled"] = [("human", "distilled")]
    diffs = paired_differences(counts, compared, n_boot)
    diff_path = report.with_name(f"{report.stem}_differences.json")
    diff_path.parent.mkdir(parents=True, exist_ok=True)
    diff_path.write_text(json.dumps(diffs, indent=2) + "\n")
    write_reports(results, report, diffs)
    png = report.with_suffix(".png")
    plot(results, png)
    write_html(
        results,
        png,
        gold["maccrobat"][:show_docs],
        {k: v["maccrobat"][:show_docs] for k, v in predictions.items()},
        report.with_suffix(".html"),
    )
    return results


def paired_differences(
    counts: dict[str, dict[str, list[Counter]]], compared: dict[str, list[tuple[str, str]]], n: int = 1000
) -> dict[str, dict[str, Any]]:
    """{comparison: {set: {cell: strict/lenient difference with its paired 95% interval}}} for each
    comparison's (a, b) model pairs (several pairs, one per seed: their mean), on every set that
    all of them were scored on."""
    out: dict[str, dict[str, Any]] = {}
    for name, pairs in compared.items():
        keys = [k for k in counts[pairs[0][0]] if all(k in counts[m] for pair in pairs for m in pair)]
        out[name] = {
            key: paired_bootstrap(
                [(counts[a][key], counts[b][key]) for a, b in pairs], cells_of(key.rsplit("_", 1)[0]), n=n
            )
            for key in keys
        }
    return out


def folded_counts(pred: list[Span], gold: list[Span], set_name: str) -> Counter:
    """Counts of the set's folded cells (FOLDED): predictions of any of our labels in the
    cell against the gold label that covers them, as one label named after the cell."""
    c: Counter = Counter()
    for cell, (gold_label, ours) in FOLDED.get(set_name, {}).items():
        p = [Span(x.doc, x.start, x.end, label=cell) for x in pred if x.label_ in ours]
        g = [Span(x.doc, x.start, x.end, label=cell) for x in gold if x.label_ == gold_label]
        c += doc_counts(p, g, [cell])
    return c


def fmt(s: dict) -> str:
    return f"{s['p']:.2f}/{s['r']:.2f}/**{s['f']:.3f}** [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"


def write_reports(results: dict, report: Path, diffs: dict[str, dict[str, Any]] | None = None) -> None:
    rows = [
        [name, s, label, fmt(sc["strict"]), fmt(sc["lenient"])]
        for name, by_set in results.items()
        for s, labels in by_set.items()
        for label, sc in labels.items()
    ]
    gaps: list[str] = []
    if diffs:
        cells = [(key, cell) for key, by_cell in next(iter(diffs.values())).items() for cell in by_cell]
        gap_rows = [
            [name, *(fmt_diff(d[key][cell]["strict"]) for key, cell in cells)] for name, d in diffs.items()
        ]
        gaps = [
            "",
            "## Paired differences, strict F1 [95% CI] (the same test documents resampled for both models)",
            "",
            *markdown_table(["comparison", *(f"{k.rsplit('_', 1)[0]} {c}" for k, c in cells)], gap_rows),
        ]
    intro = (
        "Written by `weasel run evaluate`. P/R/F1 with bootstrap 95% interval of F1 (documents resampled).\n"
        "`teachers` is the selected teacher combination applied directly."
    )
    header = ["model", "test set", "label", "strict P/R/F1 [95% CI]", "lenient P/R/F1 [95% CI]"]
    write_report(report, results, "Evaluation on the gold test sets", intro, header, rows, after=gaps)


def plot(results: dict, path: Path) -> None:
    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        scores = [results[name]["maccrobat_test"][label]["strict"] for label in LABELS]
        f1 = [s["f"] for s in scores]
        err = [[s["f"] - s["ci95"][0] for s in scores], [s["ci95"][1] - s["f"] for s in scores]]
        ax.bar([x + i * width for x in range(len(LABELS))], f1, width, yerr=err, label=name, capsize=3)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(LABELS))], LABELS)
    ax.set_ylim(0, 1)
    ax.set_ylabel("strict F1, MACCROBAT test (95% CI)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_html(results: dict, png: Path, gold_docs: list[Doc], preds: dict, path: Path) -> None:
    def render(doc: Doc, spans: list[Span], title: str) -> str:
        copy = Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
        copy.ents = [Span(copy, s.start, s.end, s.label_) for s in spans]
        copy.user_data["title"] = title
        return displacy.render(copy, style="ent", page=False, options={"colors": COLORS})

    parts = [
        "<html><head><meta charset='utf-8'><title>en_clin_distilled evaluation</title></head><body>",
        "<h1>Evaluation</h1>",
        f"<img src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>",
        "<p>Full tables: evaluation.md / evaluation.json.</p>",
    ]
    for i, doc in enumerate(gold_docs):
        parts.append(f"<h2>MACCROBAT test document {doc.user_data.get('doc_id', i)}</h2>")
        parts.append(render(doc, list(doc.ents), "gold"))
        for name, docs in preds.items():
            parts.append(render(doc, docs[i], name))
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
