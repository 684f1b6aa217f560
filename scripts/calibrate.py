"""Step `calibrate`: per teacher and term, precision on the gold dev sets; low-precision terms
dropped or relabelled (clin_distill.combine.calibrate) -> corpus/calibration.json,
reports/calibration.{json,md}."""

from pathlib import Path

import typer

from clin_distill.combine.report import run_calibration


def main(
    labelled_dir: Path,
    out: Path,
    report: Path,
    llm_dir: Path = typer.Option(None, help="LLM teachers' span groups (corpus/llm)"),
    min_count: int = typer.Option(3, help="Dev occurrences a term needs before it is judged"),
    min_precision: float = typer.Option(
        0.25, help="Terms below this dev precision are relabelled or dropped"
    ),
) -> None:
    data = run_calibration(labelled_dir, llm_dir, out, report, min_count, min_precision)
    for teacher, rules in data["table"].items():
        typer.echo(f"{teacher}: {len(rules)} terms changed")


if __name__ == "__main__":
    typer.run(main)
