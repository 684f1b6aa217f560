"""Step `combine`: every teacher subset x strategy scored on gold dev, the best per label selected
(clin_distill.combine.report) -> reports/combinations.{json,md,png}."""

from pathlib import Path

import typer

from clin_distill.combine.report import run_search


def main(
    labelled_dir: Path,
    report: Path,
    selection_set: str = typer.Option("maccrobat_dev", help="A gold dev set, or dev_mean: their mean"),
    llm_dir: Path = typer.Option(None, help="LLM teachers' span groups (corpus/llm)"),
    calibration: Path = typer.Option(None, help="Calibration table from `weasel run calibrate`"),
) -> None:
    try:
        out = run_search(labelled_dir, report, selection_set, llm_dir, calibration)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(f"{out['n_results']:,} results in {out['search_seconds']} s")
    for label, s in out["selected"].items():
        typer.echo(f"{label}: {'+'.join(s['subset'])} / {s['strategy']} (strict F1 {s['strict_f']:.3f})")


if __name__ == "__main__":
    typer.run(main)
