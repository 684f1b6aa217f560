"""Step `corpus`: gold and unlabelled corpora as DocBins, plus reports/corpus_stats.{json,md}."""

import json
from pathlib import Path

import typer

from clin_distill.corpora.build import build_corpora, write_stats
from clin_distill.errors import CorpusFormatError


def main(
    assets: Path = typer.Argument(..., exists=True, file_okay=False),
    out_dir: Path = typer.Argument(...),
    stats_json: Path = typer.Argument(...),
    split_json: Path = typer.Argument(...),
    maccrobat_train: int = typer.Option(120),
    maccrobat_dev: int = typer.Option(30),
    maccrobat_test: int = typer.Option(50),
) -> None:
    sizes = {"train": maccrobat_train, "dev": maccrobat_dev, "test": maccrobat_test}
    try:
        stats, split = build_corpora(assets, out_dir, sizes)
    except CorpusFormatError as err:  # file:line: what is wrong (never the text), without a traceback
        typer.echo(f"corpus: {err}", err=True)
        raise typer.Exit(1) from None
    write_stats(stats, stats_json)
    split_json.parent.mkdir(parents=True, exist_ok=True)
    split_json.write_text(json.dumps(split, indent=1) + "\n")
    for set_name, splits in stats.items():
        for name, s in splits.items():
            typer.echo(
                f"{set_name:>10} {name:<5} docs {s.docs:>5,}  words {s.words:>9,}  ents {dict(s.entities)}"
            )


if __name__ == "__main__":
    typer.run(main)
