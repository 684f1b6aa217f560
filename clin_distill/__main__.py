"""`python -m clin_distill extract INPUT -o OUTPUT` (also the console script `clin-distill`)."""

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def main() -> None:
    """Clinical NER with en_clin_distilled: medications, diseases, symptoms, their codes and context."""


@app.command()
def extract(
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="Folder of .txt notes, a .jsonl or a .csv file"
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Findings: .jsonl (per note) or .csv (per entity)"
    ),
    model: str = typer.Option("en_clin_distilled", help="Installed package name or pipeline folder"),
    output_format: str = typer.Option(None, "--format", help="jsonl or csv (default: OUTPUT's suffix)"),
    text_column: str = typer.Option("text", help="JSONL field / CSV column with the note's text"),
    id_column: str = typer.Option("id", help="JSONL field / CSV column with the note's id"),
    batch_size: int = typer.Option(None, help="nlp.pipe batch size (default: the model's own, 1)"),
    flush_every: int = typer.Option(
        32, help="Notes per append to OUTPUT (a killed run redoes at most these)"
    ),
    n_process: int = typer.Option(1, help="Worker processes on this machine (nlp.pipe)"),
    max_chars: int = typer.Option(1_000_000, help="Notes longer than this get an error record"),
    ray_address: str = typer.Option(
        None, help='Run on Ray: "local" (this machine), "auto" or "ray://head:10001" (a cluster)'
    ),
    ray_workers: int = typer.Option(2, help="Ray actors, one pipeline each"),
    ray_cpus_per_worker: float = typer.Option(1.0, help="CPUs Ray reserves per actor"),
    progress: bool = typer.Option(True, help="Show the progress bar"),
) -> None:
    """Label notes; a rerun with the same OUTPUT skips the notes already written."""
    from .errors import CorpusFormatError
    from .extract.notes import read_notes
    from .extract.output import Output
    from .extract.output import output_format as fmt_of
    from .extract.run import extract as run_extract

    try:
        out = Output(output, fmt_of(output, output_format))
        notes = read_notes(input_path, text_column, id_column, max_chars)
        summary = run_extract(
            notes,
            out,
            model,
            batch_size,
            n_process,
            progress,
            ray_address,
            ray_workers,
            ray_cpus_per_worker,
            flush_every,
        )
    except (CorpusFormatError, ValueError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{output}: {summary.line()}")


if __name__ == "__main__":
    app()
