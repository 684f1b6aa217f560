"""Unlabelled clinical notes from CSV exports (ACI-Bench, MTS-Dialog, MTSamples).

Each source is one column of one or more CSV files. Empty cells are skipped ("empty_document")
and an exact repeat of an earlier note in the same source is skipped ("duplicate_text"), so a
note is never labelled or trained on twice. The original file and row stay in `doc.user_data`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import CorpusFormatError, read_utf8
from .stats import CorpusStats

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class NoteSource:
    """Where a source's notes are: files (relative to the assets folder) and the text column."""

    name: str
    files: tuple[str, ...]
    text_column: str
    id_column: str | None = None


NOTE_SOURCES: tuple[NoteSource, ...] = (
    NoteSource(
        "aci_bench",
        tuple(
            f"aci_bench/{f}.csv"
            for f in (
                "train",
                "valid",
                "clinicalnlp_taskB_test1",
                "clinicalnlp_taskC_test2",
                "clef_taskC_test3",
            )
        ),
        "note",
        "encounter_id",
    ),
    NoteSource(
        "mts_dialog",
        tuple(
            f"mts_dialog/MTS-Dialog-{f}.csv"
            for f in (
                "TrainingSet",
                "ValidationSet",
                "TestSet-1-MEDIQA-Chat-2023",
                "TestSet-2-MEDIQA-Sum-2023",
            )
        ),
        "section_text",
        "ID",
    ),
    NoteSource("mtsamples", ("mtsamples/mtsamples_alexis.csv",), "transcription"),
    # This export keeps an odd header: the column named "tweet" holds the transcription.
    NoteSource("mtsamples", ("mtsamples/mtsamples_hackathon.csv",), "tweet"),
)


def read_csv_column(path: Path, column: str, id_column: str | None) -> Iterator[tuple[str, int, str]]:
    """Yield (row id, line number, text) for one column; a missing column names the file."""
    reader = csv.DictReader(io.StringIO(read_utf8(path), newline=""))
    if reader.fieldnames is None or column not in reader.fieldnames:
        raise CorpusFormatError(path, f"no column {column!r} in the header", 1)
    row_no = 0
    for row in reader:
        row_no += 1
        if row.get(column) is None:
            raise CorpusFormatError(path, "row has fewer fields than the header", reader.line_num)
        row_id = row.get(id_column) if id_column else None
        yield (row_id or str(row_no)), reader.line_num, row[column]


def read_notes(nlp: Language, assets: Path, sources: list[NoteSource], stats: CorpusStats) -> Iterator[Doc]:
    """Yield one Doc per distinct non-empty note of the given sources (all of one name)."""
    seen: set[str] = set()
    for source in sources:
        for rel in source.files:
            for row_id, line, text in read_csv_column(assets / rel, source.text_column, source.id_column):
                if not text.strip():
                    stats.skipped["empty_document"] += 1
                    continue
                digest = hashlib.sha1(text.strip().encode("utf-8")).hexdigest()
                if digest in seen:
                    stats.skipped["duplicate_text"] += 1
                    continue
                seen.add(digest)
                doc = nlp.make_doc(text)
                doc.user_data.update(
                    {"doc_id": f"{Path(rel).stem}:{row_id}", "source": source.name, "file": rel, "line": line}
                )
                stats.add_doc(doc)
                yield doc


def hash_sample(docs: Iterable[Doc], n: int | None) -> list[Doc]:
    """`n` docs (None: all) in the order of a hash of their text: the same sample on every run and machine."""
    return sorted(docs, key=lambda d: hashlib.sha256(d.text.encode("utf-8")).hexdigest())[:n]
