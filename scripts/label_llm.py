"""Step `label-llm`: every LLM teacher in configs/teachers/llm labels the gold dev set (scored) and a
sample of unlabelled notes; accounting and scores -> reports/llm_teachers.{json,md}. The work is
`clin_distill.llm.run.label_teachers`; this is its command line."""

from pathlib import Path

import typer

from clin_distill.llm.run import Options, label_teachers


def main(
    config_dir: Path,
    corpus_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    report: Path,
    prices_path: Path = typer.Option(..., "--prices"),
    sample: int = typer.Option(5, help="Unlabelled notes per teacher"),
    dev_docs: int = typer.Option(0, help="Gold dev documents to label and score (0: all)"),
    dev_set: str = typer.Option("maccrobat_dev"),
    local_server: list[str] = typer.Option([], help="Teacher whose llama.cpp server this step starts"),
    n_ctx: int = typer.Option(2048, help="Context of the local server, in tokens"),
    allow_remote_flag: str = typer.Option(
        "false", "--allow-remote", help="true: allow non-loopback endpoints"
    ),
) -> None:
    options = Options(
        sample=sample,
        dev_docs=dev_docs,
        dev_set=dev_set,
        local_server=frozenset(local_server),
        n_ctx=n_ctx,
        allow_remote=allow_remote_flag.strip().lower() in ("true", "1", "yes"),
    )
    label_teachers(config_dir, corpus_dir, out_dir, cache_dir, report, prices_path, options, typer.echo)


if __name__ == "__main__":
    typer.run(main)
