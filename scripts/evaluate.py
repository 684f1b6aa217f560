"""Step `evaluate`: both students and the selected teacher combination on the gold test sets
(clin_distill.evaluation) -> reports/evaluation.{json,md,png,html}."""

from pathlib import Path

import typer

from clin_distill.evaluation import evaluate
from clin_distill.labels import LABELS


def main(
    gold_dir: Path,
    labelled_dir: Path,
    combinations: Path,
    report: Path,
    models: list[str] = typer.Option(..., "--model", help="name=path of a trained pipeline"),
    n_boot: int = typer.Option(1000),
    show_docs: int = typer.Option(3),
    limit: int = typer.Option(0, help="First N documents of each test set (0: all)"),
    llm_dir: Path = typer.Option(None, help="LLM teachers' span groups (corpus/llm)"),
    calibration: Path = typer.Option(None, help="Calibration table from `weasel run calibrate`"),
) -> None:
    named = {name: Path(path) for name, path in (spec.split("=", 1) for spec in models)}
    results = evaluate(
        gold_dir, labelled_dir, combinations, report, named, n_boot, show_docs, limit, llm_dir, calibration
    )
    for name, by_set in results.items():
        f1 = {label: by_set["maccrobat_test"][label]["strict"]["f"] for label in LABELS}
        typer.echo(f"{name}: MACCROBAT test strict F1 {f1}")


if __name__ == "__main__":
    typer.run(main)
