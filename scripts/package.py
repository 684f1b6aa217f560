"""Step `package`: `spacy package` of the distilled student as the installable `en_clin_distilled`
(clin_distill.packaging: meta.json, model card, the inference pipes and their code in the wheel)."""

from pathlib import Path

import typer

from clin_distill.packaging import build_meta, package_model


def main(
    model_dir: Path,
    out_dir: Path,
    combinations: Path,
    evaluation: Path,
    name: str = typer.Option("clin_distilled"),
    version: str = typer.Option("0.1.0"),
    project_file: Path = typer.Option(Path("project.yml")),
    linker: Path = typer.Option(None, help="Pipeline holding the `clin_linker` table (training/linker)"),
) -> None:
    meta = build_meta(model_dir, combinations, evaluation, name, version, project_file)
    package_model(model_dir, out_dir, meta, linker)


if __name__ == "__main__":
    typer.run(main)
