"""Notes in: a folder of .txt files, a JSONL file (`id`, `text`) or a CSV file, one `Note` each.

A note that cannot be labelled (not UTF-8, empty, NUL bytes, larger than `max_chars`, a JSONL line
that is not JSON or lacks a field) comes through with `error` set and no text, so the run writes
an error record for it and goes on. Errors name the file and line, never the note's content.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorpusFormatError

MAX_CHARS = 1_000_000  # spaCy's own default nlp.max_length


@dataclass(frozen=True)
class Note:
    id: str
    text: str | None
    error: str | None = None


def check_text(raw: bytes | str, max_chars: int = MAX_CHARS) -> tuple[str | None, str | None]:
    """(text, None) for a note that can be labelled, else (None, reason)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return None, f"not valid UTF-8 (byte offset {err.start})"
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # surrogates: bytes of a CSV row that were not UTF-8
        return None, "not valid UTF-8"
    if "\x00" in raw:
        return None, "contains NUL bytes"
    if not raw.strip():
        return None, "empty"
    if len(raw) > max_chars:
        return None, f"too large ({len(raw):,} characters; limit {max_chars:,})"
    return raw, None


def input_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise CorpusFormatError(path, "input must be a folder of .txt files, a .jsonl file or a .csv file")


def read_notes(
    path: Path, text_column: str = "text", id_column: str = "id", max_chars: int = MAX_CHARS
) -> Iterator[Note]:
    """Notes in input order (a folder: its .txt files sorted by relative path, which is the id)."""
    kind = input_kind(path)
    if kind == "folder":
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise CorpusFormatError(path, "no .txt files in this folder")
        for file in files:
            text, error = check_text(file.read_bytes(), max_chars)
            yield Note(file.relative_to(path).with_suffix("").as_posix(), text, error)
    elif kind == "jsonl":
        yield from _jsonl_notes(path, text_column, id_column, max_chars)
    else:
        yield from _csv_notes(path, text_column, id_column, max_chars)


def _jsonl_notes(path: Path, text_column: str, id_column: str, max_chars: int) -> Iterator[Note]:
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fallback = f"{path.name}:{lineno}"
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as err:
                yield Note(fallback, None, f"line {lineno}: not valid UTF-8 (byte offset {err.start})")
                continue
            except json.JSONDecodeError as err:
                yield Note(fallback, None, f"line {lineno}: not JSON ({err.msg})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
                yield Note(
                    _id(row, id_column, fallback), None, f"line {lineno}: no string field {text_column!r}"
                )
                continue
            text, error = check_text(row[text_column], max_chars)
            yield Note(_id(row, id_column, fallback), text, error and f"line {lineno}: {error}")


def _id(row: object, id_column: str, fallback: str) -> str:
    value = row.get(id_column) if isinstance(row, dict) else None
    return str(value) if value not in (None, "") else fallback


def _csv_notes(path: Path, text_column: str, id_column: str, max_chars: int) -> Iterator[Note]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # clinical notes are longer than csv's 128 kB
    # Undecodable bytes survive as surrogates, so only the rows holding them become error records.
    content = path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.DictReader(
        content.splitlines(keepends=True), delimiter="\t" if path.suffix == ".tsv" else ","
    )
    fields = reader.fieldnames or []
    if text_column not in fields:
        raise CorpusFormatError(path, f"no column {text_column!r} (columns: {', '.join(fields)})", 1)
    for row in reader:
        fallback = f"{path.name}:{reader.line_num}"
        text, error = check_text(row.get(text_column) or "", max_chars)
        note_id = row.get(id_column) if id_column in fields else None
        yield Note(note_id or fallback, text, error and f"line {reader.line_num}: {error}")
