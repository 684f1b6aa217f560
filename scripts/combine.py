"""Step `combine`: every teacher subset x strategy scored on gold dev, the best per label selected
(clin_distill.combine.report) -> reports/combinations.{json,md,png}."""

from pathlib import Path

import typer

from clin_distill.combine.report import run_search


def main(labelled_dir: Path, report: Path, selection_set: str = "maccrobat_dev") -> None:
    try:
        out = run_search(labelled_dir, report, selection_set)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    for label, s in out["selected"].items():
        typer.echo(f"{label}: {'+'.join(s['subset'])} / {s['strategy']} (strict F1 {s['strict_f']:.3f})")


if __name__ == "__main__":
    typer.run(main)
