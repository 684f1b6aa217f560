"""Unlabelled clinical notes from CSV exports (ACI-Bench, MTS-Dialog, MTSamples).

Each source is one column of one or more CSV files. Empty cells are skipped ("empty_document")
and an exact repeat of an earlier note in the same source is skipped ("duplicate_text"), so a
note is never labelled or trained on twice. The original file and row stay in `doc.user_data`
(`line`: the line the record ends on).

Parsing is strict, because a lenient CSV reader loses notes without a trace: a quote left open
would swallow the following rows into one note, and surplus fields would be dropped. So each of
these fails naming the file and line: a quote never closed (the line its record starts on), a
closing quote followed by other characters, a row whose field count differs from the header's,
a header without the text or id column or with one of them twice, and an id repeated in one
file with a different note (an exact repeat is skipped and counted as "duplicate_text", as any
repeated note). Blank lines hold no fields and are skipped and counted ("blank_line").
Control characters and over-long notes fail as in `checks`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import CorpusFormatError, read_utf8
from .checks import CSV_LINE_BREAK, check_controls, make_doc
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


class CsvRow(NamedTuple):
    """One record of the text column: its id, the lines it spans and the note."""

    row_id: str
    first_line: int
    last_line: int
    text: str


def _column_index(path: Path, header: list[str], column: str) -> int:
    count = header.count(column)
    if count != 1:
        problem = "no column" if count == 0 else "column"
        where = "in the header" if count == 0 else f"appears {count} times in the header"
        raise CorpusFormatError(path, f"{problem} {column!r} {where}", 1)
    return header.index(column)


def _records(path: Path) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each CSV record, failing on broken quoting."""
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""), strict=True)
    while True:
        first = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            if "end of data" in str(err):  # strict csv's words for a quote open at the end of the file
                message = f"unclosed quote: this record runs to the end of the file (line {reader.line_num})"
                raise CorpusFormatError(path, message, first) from None
            message = f"malformed CSV in the record starting at line {first} ({err})"
            hint = "; a quote inside a quoted field must be doubled" if "expected after" in str(err) else ""
            raise CorpusFormatError(path, message + hint, reader.line_num) from None
        yield first, reader.line_num, fields


def csv_rows(
    path: Path, column: str, id_column: str | None, stats: CorpusStats | None = None
) -> Iterator[CsvRow]:
    """Each record's text column, checked (see the module docstring); blank lines counted in `stats`."""
    records = _records(path)
    header = next(records, (1, 1, []))[2]
    index = _column_index(path, header, column)
    id_index = _column_index(path, header, id_column) if id_column else None
    first_seen: dict[str, tuple[int, str]] = {}
    row_no = 0
    for first, last, fields in records:
        if not fields:
            if stats is not None:
                stats.skipped["blank_line"] += 1
            continue
        row_no += 1
        if len(fields) != len(header):
            plural = "" if len(fields) == 1 else "s"
            raise CorpusFormatError(
                path, f"row has {len(fields)} field{plural}, the header has {len(header)}", first
            )
        text = fields[index]
        row_id = (fields[id_index] if id_index is not None else "") or str(row_no)
        digest = _digest(text)
        if row_id in first_seen and first_seen[row_id][1] != digest:
            raise CorpusFormatError(
                path, f"id {row_id!r} already on line {first_seen[row_id][0]}, with a different note", first
            )
        first_seen.setdefault(row_id, (first, digest))
        text_line = first + sum(len(CSV_LINE_BREAK.findall(f)) for f in fields[:index])
        check_controls(text, path, text_line, row_id, CSV_LINE_BREAK)
        yield CsvRow(row_id, first, last, text)


def read_csv_column(path: Path, column: str, id_column: str | None) -> Iterator[tuple[str, int, str]]:
    """Yield (row id, last line, text) for one column, checked as `csv_rows` checks them."""
    for row in csv_rows(path, column, id_column):
        yield row.row_id, row.last_line, row.text


def _digest(text: str) -> str:
    """What makes two notes the same: their text without surrounding blanks."""
    return hashlib.sha1(text.strip().encode("utf-8")).hexdigest()


def read_notes(nlp: Language, assets: Path, sources: list[NoteSource], stats: CorpusStats) -> Iterator[Doc]:
    """Yield one Doc per distinct non-empty note of the given sources (all of one name)."""
    seen: set[str] = set()
    for source in sources:
        for rel in source.files:
            path = assets / rel
            for row in csv_rows(path, source.text_column, source.id_column, stats):
                if not row.text.strip():
                    stats.skipped["empty_document"] += 1
                    continue
                digest = _digest(row.text)
                if digest in seen:
                    stats.skipped["duplicate_text"] += 1
                    continue
                seen.add(digest)
                doc = make_doc(nlp, row.text, path, row.first_line, row.row_id)
                doc.user_data.update(
                    {
                        "doc_id": f"{Path(rel).stem}:{row.row_id}",
                        "source": source.name,
                        "file": rel,
                        "line": row.last_line,
                    }
                )
                stats.add_doc(doc)
                yield doc


def hash_sample(docs: Iterable[Doc], n: int | None) -> list[Doc]:
    """`n` docs (None: all) in the order of a hash of their text: the same sample on every run and machine."""
    return sorted(docs, key=lambda d: hashlib.sha256(d.text.encode("utf-8")).hexdigest())[:n]
