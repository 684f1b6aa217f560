"""Step `benchmark-gpu` (optional, never in `all`): the student's encoder on a GPU, beside the CPU
numbers of `weasel run benchmark` -> reports/benchmark_gpu.{json,md} (clin_distill.bench.gpu).

`export` runs where the project runs; `run` needs only torch and transformers (on a GPU box
without the project installed: from the repository root with `PYTHONPATH=.`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from clin_distill.bench.gpu import NoGpuError, export_bundle, run_bundle

app = typer.Typer(add_completion=False)


@app.command()
def export(
    model: Path,
    unlabelled_dir: Path,
    bundle: Path,
    notes: int = typer.Option(300, help="Same sample as `weasel run benchmark`"),
    batch_sizes: list[int] = typer.Option([1, 32, 128, 300], "--batch-size"),
    half_weights: bool = typer.Option(False, help="Store fp16 weights (halves what travels)"),
) -> None:
    meta = export_bundle(model, unlabelled_dir, bundle, notes, batch_sizes, half_weights)
    typer.echo(f"bundle {bundle}: {meta['notes']} notes, {meta['words']:,} words, batch sizes {batch_sizes}")


@app.command()
def run(
    bundle: Path,
    report: Path,
    cpu_report: Path = typer.Option(Path("reports/benchmark.json"), help="CPU numbers to set beside"),
    device: str = typer.Option("cuda:0"),
) -> None:
    try:
        run_bundle(bundle, report, cpu_report, device)
    except NoGpuError as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(report.with_suffix(".md").read_text())


if __name__ == "__main__":
    app()
