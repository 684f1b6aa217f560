"""Step `evaluate-external`: the user's own gold set (BRAT, Prodigy / Label Studio JSON(L), DocBin) ->
a gold DocBin (clin_distill.corpora.external) -> a model's scores (clin_distill.external) ->
reports/external.{json,md}."""

from pathlib import Path

import typer

from clin_distill.corpora.build import write_docbin
from clin_distill.corpora.external import FORMATS, load_label_map, read_external
from clin_distill.errors import CorpusFormatError
from clin_distill.external import evaluate_external


def main(
    gold: Path | None = typer.Argument(None, exists=True, help="Your gold set (vars.external_gold)"),
    model: str = typer.Option("en_clin_distilled", help="Installed package name or pipeline directory"),
    labels: Path = typer.Option(Path("configs/external.cfg"), exists=True, help="Label map config"),
    fmt: str = typer.Option("auto", "--format", help=f"One of: {', '.join(FORMATS)}"),
    out_docbin: Path = typer.Option(Path("corpus/external/gold.spacy")),
    report: Path = typer.Option(Path("reports/external.json")),
    n_boot: int = typer.Option(1000),
) -> None:
    if gold is None:
        typer.echo("evaluate-external: no gold set (--vars.external_gold=PATH)", err=True)
        raise typer.Exit(1)
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        docs, stats = read_external(gold, load_label_map(labels), fmt)
    except CorpusFormatError as err:  # file:line: what is wrong (never the text), without a traceback
        typer.echo(f"evaluate-external: {err}", err=True)
        raise typer.Exit(1) from None
    if not docs:
        typer.echo(f"evaluate-external: no annotated documents in {gold}", err=True)
        raise typer.Exit(1)
    write_docbin(docs, out_docbin)
    data = evaluate_external(out_docbin, model, report, stats, n_boot)
    f1 = {label: s["strict"]["f"] for label, s in data["scores"].items()}
    typer.echo(f"{data['docs']} docs, gold mentions {data['mentions']}, dropped {dict(stats.ignored_types)}")
    typer.echo(f"strict F1 {f1}; spacy evaluate ents_f {data['spacy_evaluate']['ents_f']}")


if __name__ == "__main__":
    typer.run(main)
