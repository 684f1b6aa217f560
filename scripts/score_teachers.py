"""Step `score-ontology`: teacher scores on gold dev sets and words/s -> reports/teachers.{json,md}."""

import os
from pathlib import Path

import typer
from spacy.tokens import DocBin

from clin_distill.labels import GOLD_LABELS
from clin_distill.reports import write_report
from clin_distill.scoring import score
from clin_distill.teachers.labelling import load_teachers, teacher_labels, words_per_second


def main(
    labelled_dir: Path,
    unlabelled_dir: Path,
    report: Path,
    teachers_dir: Path,
) -> None:
    pipelines = load_teachers(teachers_dir)
    vocab = next(iter(pipelines.values())).vocab
    texts = [
        d.text for p in sorted(unlabelled_dir.glob("*.spacy")) for d in DocBin().from_disk(p).get_docs(vocab)
    ]
    dev = {s: list(DocBin().from_disk(labelled_dir / f"{s}_dev.spacy").get_docs(vocab)) for s in GOLD_LABELS}
    out = {"teachers": {}, "speed_corpus": {"notes": len(texts), "cpu_count": os.cpu_count()}}
    for name, nlp in pipelines.items():
        wps, words = words_per_second(nlp, texts, repeats=2)
        out["speed_corpus"]["words"] = words
        emits = set(teacher_labels(nlp))  # score only what the teacher can label
        scores = {
            f"{s}_dev": score(
                ((d.spans[name], d) for d in docs), [lb for lb in GOLD_LABELS[s] if lb in emits]
            )
            for s, docs in dev.items()
            if emits & set(GOLD_LABELS[s])
        }
        out["teachers"][name] = {"words_per_second": round(wps, 1), "scores": scores}
        typer.echo(f"{name}: {wps:,.0f} words/s")
    rows = [
        [name, f"{t['words_per_second']:,.0f}", gold, label]
        + [f"{s[m]['p']:.2f}/{s[m]['r']:.2f}/{s[m]['f']:.2f}" for m in ("strict", "lenient")]
        for name, t in out["teachers"].items()
        for gold, labels in t["scores"].items()
        for label, s in labels.items()
    ]
    intro = (
        f"Written by `weasel run score-ontology`. Speed: raw text of all {len(texts):,} unlabelled notes "
        f"({out['speed_corpus'].get('words', 0):,} words), tokenizer included, one process, best of 2."
    )
    header = ["teacher", "words/s", "gold set", "label", "strict P/R/F1", "lenient P/R/F1"]
    write_report(report, out, "Ontology teachers", intro, header, rows)


if __name__ == "__main__":
    typer.run(main)
