"""Step `distil-corpus`: the selected combination applied to teacher-labelled training texts
(clin_distill.combine.distil) -> corpus/distilled/{train,dev}.spacy, reports/distilled_corpus.{json,md}."""

from pathlib import Path

import typer
from spacy.util import load_config, registry

from clin_distill.combine import partial  # noqa: F401  (registers the partial-label rules)
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
    config: Path = typer.Option(None, help="configs/distil.cfg: the partial-label rule"),
    partial_labels: str = typer.Option(
        None,
        help="A registered rule with its defaults instead of the config's, e.g. clin_distill.all_outside.v1",
    ),
) -> None:
    rule = None
    if partial_labels:
        rule = registry.misc.get(partial_labels)()
    elif config:
        cfg = load_config(config, interpolate=True)
        rule = registry.resolve({"partial_labels": cfg["partial_labels"]})["partial_labels"]
    stats = write_distilled_corpus(
        labelled_dir, combinations, out_dir, report, sources, dev_percent, llm_dir, calibration, rule
    )
    typer.echo(f"train {stats['train']}\ndev {stats['dev']}")


if __name__ == "__main__":
    typer.run(main)
