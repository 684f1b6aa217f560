"""Build every gold and unlabelled DocBin of the project, with the counts that account for them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..labels import LABELS
from ..reports import write_report
from .brat import brat_doc_ids, read_brat_dir
from .notes import NOTE_SOURCES, read_notes
from .pubtator import BC5CDR_LABELS, NCBI_LABELS, read_pubtator
from .split import hash_split
from .stats import CorpusStats

SPLITS = ("train", "dev", "test")
PUBTATOR_FILES: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "bc5cdr": (
        "bc5cdr",
        {
            "train": "CDR_TrainingSet.PubTator.txt",
            "dev": "CDR_DevelopmentSet.PubTator.txt",
            "test": "CDR_TestSet.PubTator.txt",
        },
        BC5CDR_LABELS,
    ),
    "ncbi": (
        "ncbi_disease",
        {
            "train": "NCBItrainset_corpus.txt",
            "dev": "NCBIdevelopset_corpus.txt",
            "test": "NCBItestset_corpus.txt",
        },
        NCBI_LABELS,
    ),
}


def make_nlp() -> Language:
    """The tokenizer every corpus, teacher and student shares: spaCy's English rules."""
    return spacy.blank("en")


def write_docbin(docs: Iterable[Doc], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=True).to_disk(path)


def build_corpora(
    assets: Path, out_dir: Path, maccrobat_sizes: dict[str, int]
) -> tuple[dict[str, dict[str, CorpusStats]], dict[str, list[str]]]:
    """Write `gold/<set>_<split>.spacy` and `unlabelled/<source>.spacy`; return stats and the split."""
    nlp = make_nlp()
    stats: dict[str, dict[str, CorpusStats]] = {}

    maccrobat_dir = assets / "maccrobat2020"
    split = hash_split(brat_doc_ids(maccrobat_dir), maccrobat_sizes)
    stats["maccrobat"] = {}
    for name, ids in split.items():
        s = stats["maccrobat"][name] = CorpusStats()
        write_docbin(read_brat_dir(nlp, maccrobat_dir, ids, s), out_dir / "gold" / f"maccrobat_{name}.spacy")

    for set_name, (folder, files, label_map) in PUBTATOR_FILES.items():
        stats[set_name] = {}
        for name in SPLITS:
            s = stats[set_name][name] = CorpusStats()
            docs = read_pubtator(nlp, assets / folder / files[name], label_map, s)
            write_docbin(docs, out_dir / "gold" / f"{set_name}_{name}.spacy")

    for source_name in dict.fromkeys(src.name for src in NOTE_SOURCES):
        sources = [src for src in NOTE_SOURCES if src.name == source_name]
        s = CorpusStats()
        stats[source_name] = {"all": s}
        write_docbin(read_notes(nlp, assets, sources, s), out_dir / "unlabelled" / f"{source_name}.spacy")
    return stats, split


def write_stats(stats: dict[str, dict[str, CorpusStats]], json_path: Path) -> None:
    """`<name>.json` in the documented shape and `<name>.md`, a table for people."""
    data = {
        set_name: {split: s.to_dict() for split, s in splits.items()} for set_name, splits in stats.items()
    }
    rows = [
        [
            set_name,
            split,
            f"{d['docs']:,}",
            f"{d['words']:,}",
            *(f"{d['entities'][label]:,}" for label in LABELS),
            f"{d['adjusted_spans']:,}",
            ", ".join(f"{k} {v:,}" for k, v in d["skipped"].items() if v) or "-",
        ]
        for set_name, splits in data.items()
        for split, d in splits.items()
    ]
    write_report(
        json_path,
        data,
        "Corpus statistics",
        f"Written by `weasel run corpus` ({json_path.name}).",
        ["set", "split", "docs", "words", *LABELS, "adjusted spans", "skipped"],
        rows,
        after=[
            "",
            "Entities are those in `doc.ents` (non-overlapping); the `gold` span group keeps every",
            "aligned mention. Raw per-type counts and adjustment kinds are in the JSON.",
        ],
    )
