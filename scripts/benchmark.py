"""Step `benchmark`: the packaged student against the hardware ceiling and against its teachers,
in one run on one machine -> reports/benchmark.{json,md} (clin_distill.bench.cpu measures)."""

from pathlib import Path

import typer

from clin_distill.bench.cpu import CpuBenchmark, run_cpu_benchmark
from clin_distill.bench.cpu_report import write_cpu_report


def main(
    model: str,
    unlabelled_dir: Path,
    llm_report: Path,
    report: Path,
    prices_path: Path = typer.Option(..., "--prices"),
    teachers: Path = typer.Option(None, "--teachers", help="Folder of teacher pipelines"),
    llm_config: Path = typer.Option(None, "--llm-config"),
    gold: Path = typer.Option(None, "--gold", help="Gold DocBin: strict F1 of each encoder"),
    notes: int = typer.Option(300, help="Real notes in the throughput sample"),
    llm_notes: int = typer.Option(6, help="Notes the local LLM teacher labels for its s/note"),
    long_notes: int = typer.Option(10_000, help="Varied notes in the long run that watches resident memory"),
    untrimmed_notes: int = typer.Option(2000, help="Of those, notes in the run without heap trimming"),
    batch_sizes: list[int] = typer.Option([1, 32, 128], "--batch-size"),
    n_ctx: int = typer.Option(2048),
) -> None:
    settings = CpuBenchmark(
        model=model,
        unlabelled_dir=unlabelled_dir,
        llm_report=llm_report,
        prices_path=prices_path,
        teachers=teachers,
        llm_config=llm_config,
        gold=gold,
        notes=notes,
        llm_notes=llm_notes,
        long_notes=long_notes,
        untrimmed_notes=untrimmed_notes,
        batch_sizes=batch_sizes,
        n_ctx=n_ctx,
        log_dir=report.parent,
    )
    data = run_cpu_benchmark(settings, echo=typer.echo)
    write_cpu_report(report, data, gold.stem if gold else None, llm_config.stem if llm_config else None)


if __name__ == "__main__":
    typer.run(main)
