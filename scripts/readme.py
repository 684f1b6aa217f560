"""Step `readme`: README.md's results, speed and steps tables from reports/*.json and project.yml
(clin_distill.readme); `--check` only says whether README.md is current."""

from pathlib import Path

import typer

from clin_distill.readme import render


def main(readme: Path, reports: Path, project: Path = Path("project.yml"), check: bool = False) -> None:
    current = readme.read_text()
    fresh = render(current, reports, project)
    if check:
        if fresh != current:
            typer.echo(f"{readme} is stale: run `python scripts/readme.py {readme} {reports}`", err=True)
            raise typer.Exit(1)
        return
    readme.write_text(fresh)


if __name__ == "__main__":
    typer.run(main)
