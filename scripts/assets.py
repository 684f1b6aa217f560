"""Step `assets`: fill assets/ from the local shared copy (verified) or download from the sources."""

from pathlib import Path

import typer

from clin_distill.assets import fetch_assets


def main(
    shared: Path = typer.Argument(..., help="Local copy of the public data; used when it exists"),
    project_dir: Path = typer.Option(Path("."), exists=True, file_okay=False),
) -> None:
    for line in fetch_assets(project_dir, shared if shared.exists() else None):
        typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
