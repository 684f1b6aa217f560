"""Step `score-ontology`: teacher scores on gold dev sets -> reports/teachers.{json,md}. Each
teacher's words/s is the benchmark's (`weasel run benchmark`, reports/benchmark.md), not timed here."""

from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin

from clin_distill.labels import GOLD_LABELS
from clin_distill.reports import write_report
from clin_distill.scoring import score
from clin_distill.teachers.labelling import saved_teacher_labels, teacher_dirs


def main(
    labelled_dir: Path,
    report: Path,
    teachers_dir: Path,
) -> None:
    emitted = {p.name: set(saved_teacher_labels(p)) for p in teacher_dirs(teachers_dir)}
    vocab = spacy.blank("en").vocab
    dev = {s: list(DocBin().from_disk(labelled_dir / f"{s}_dev.spacy").get_docs(vocab)) for s in GOLD_LABELS}
    out = {"teachers": {}}
    for name, emits in emitted.items():  # score only the labels each teacher can give
        scores = {
            f"{s}_dev": score(
                ((d.spans[name], d) for d in docs), [lb for lb in GOLD_LABELS[s] if lb in emits]
            )
            for s, docs in dev.items()
            if emits & set(GOLD_LABELS[s])
        }
        out["teachers"][name] = {"scores": scores}
        typer.echo(f"{name}: scored on {', '.join(scores)}")
    rows = [
        [name, gold, label]
        + [f"{s[m]['p']:.2f}/{s[m]['r']:.2f}/{s[m]['f']:.2f}" for m in ("strict", "lenient")]
        for name, t in out["teachers"].items()
        for gold, labels in t["scores"].items()
        for label, s in labels.items()
    ]
    intro = (
        "Written by `weasel run score-ontology`: each teacher on the gold dev sets, only the labels it can "
        "name. Words/s per teacher: reports/benchmark.md (`weasel run benchmark`)."
    )
    header = ["teacher", "gold set", "label", "strict P/R/F1", "lenient P/R/F1"]
    write_report(report, out, "Ontology teachers", intro, header, rows)


if __name__ == "__main__":
    typer.run(main)
