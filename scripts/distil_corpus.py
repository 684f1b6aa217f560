"""Step `distil-corpus`: the selected combination applied to teacher-labelled training texts
(clin_distill.combine.distil) -> corpus/distilled/{train,dev}.spacy, reports/distilled_corpus.{json,md}."""

from pathlib import Path

import typer

from clin_distill.combine.distil import write_distilled_corpus


def main(
    labelled_dir: Path,
    combinations: Path,
    out_dir: Path,
    report: Path,
    sources: list[str] = typer.Option(..., "--source", help="Teacher-labelled DocBin name, e.g. aci_bench"),
    dev_percent: int = typer.Option(10),
    llm_dir: Path = typer.Option(None, help="LLM teachers' span groups (corpus/llm)"),
    calibration: Path = typer.Option(None, help="Calibration table from `weasel run calibrate`"),
) -> None:
    stats = write_distilled_corpus(
        labelled_dir, combinations, out_dir, report, sources, dev_percent, llm_dir, calibration
    )
    typer.echo(f"train {stats['train']}\ndev {stats['dev']}")


if __name__ == "__main__":
    typer.run(main)
