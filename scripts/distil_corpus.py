"""Step `distil-corpus`: the selected combination applied to teacher-labelled training texts.

Writes corpus/distilled/{train,dev}.spacy (dev: a fixed share of documents held out by hash of
their id, teacher labels only) and reports/distilled_corpus.{json,md}.
"""

import json
from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin

from clin_distill.combine.distil import corpus_stats, distil_docs, is_dev
from clin_distill.labels import LABELS
from clin_distill.reports import write_report


def main(
    labelled_dir: Path,
    combinations: Path,
    out_dir: Path,
    report: Path,
    sources: list[str] = typer.Option(..., "--source", help="Teacher-labelled DocBin name, e.g. aci_bench"),
    dev_percent: int = typer.Option(10),
) -> None:
    combo = json.loads(combinations.read_text())
    vocab = spacy.blank("en").vocab  # lexeme flags (is_space) need the English vocab
    split: dict[str, list] = {"train": [], "dev": []}
    per_source = {}
    for name in sources:
        docs = DocBin().from_disk(labelled_dir / f"{name}.spacy").get_docs(vocab)
        merged = list(distil_docs(docs, combo["selected"], combo["weights"]))
        for doc in merged:
            doc.user_data.setdefault("source", name)
            split["dev" if is_dev(f"{name}:{doc.user_data['doc_id']}", dev_percent) else "train"].append(doc)
        per_source[name] = corpus_stats(merged)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, docs in split.items():
        DocBin(docs=docs, store_user_data=True).to_disk(out_dir / f"{name}.spacy")
    stats = {
        "selected": combo["selected"],
        "sources": per_source,
        **{k: corpus_stats(v) for k, v in split.items()},
    }
    parts = [
        *((f"source {k}", v) for k, v in per_source.items()),
        ("**train**", stats["train"]),
        ("**dev**", stats["dev"]),
    ]
    rows = [
        [part, f"{s['docs']:,}", f"{s['words']:,}", *(f"{s['entities'][label]:,}" for label in LABELS)]
        for part, s in parts
    ]
    intro = (
        "Written by `weasel run distil-corpus`: teacher labels merged with the combination selected in\n"
        "`reports/combinations.md`; no human label is used."
    )
    write_report(report, stats, "Distilled training corpus", intro, ["part", "docs", "words", *LABELS], rows)
    typer.echo(f"train {stats['train']}\ndev {stats['dev']}")


if __name__ == "__main__":
    typer.run(main)
