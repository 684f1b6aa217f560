"""Step `label-ontology`: every ontology teacher labels the unlabelled notes and gold train/dev texts."""

from pathlib import Path

import typer

from clin_distill.teachers.labelling import label_docbins, load_teachers


def main(
    corpus_dir: Path,
    out_dir: Path,
    teachers_dir: Path = typer.Argument(..., help="Folder of assembled teacher pipelines"),
) -> None:
    pipelines = load_teachers(teachers_dir)
    inputs = sorted((corpus_dir / "unlabelled").glob("*.spacy"))
    # Gold texts: train/dev for the combination search and the student; test only so that the
    # teacher baseline can be scored. Their gold labels stay in doc.ents, untouched.
    inputs += [
        corpus_dir / "gold" / f"{s}_{split}.spacy"
        for s in ("maccrobat", "bc5cdr", "ncbi")
        for split in ("train", "dev", "test")
    ]
    for src, n in label_docbins(pipelines, [(src, out_dir / src.name) for src in inputs]):
        typer.echo(f"{src.name}: {n:,} docs labelled by {', '.join(pipelines)}")


if __name__ == "__main__":
    typer.run(main)
