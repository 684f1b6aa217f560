"""Findings out: JSONL (one line per note) or CSV (one row per entity), appended batch by batch.

Resuming: the ids already in the output are skipped. Whatever a killed run left unfinished (a
last line without its newline; in CSV, the rows of the last note, which may be incomplete) is cut
off before appending, so the output never holds half a note.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .pipeline import ENTITY_FIELDS

CSV_FIELDS = ["id", "error", *ENTITY_FIELDS]


def output_format(path: Path, fmt: str | None) -> str:
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"{path}: output format must be jsonl or csv (from --format or the suffix)")
    return fmt


class Output:
    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def resume(self) -> set[str]:
        """Ids of the notes complete in an existing output; cuts off an unfinished tail."""
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # complete lines only
        ids: list[tuple[str, int]] = []  # (id, offset of its first line)
        offset = 0
        for line in data[:end].splitlines(keepends=True):
            note_id = self._line_id(line)
            if note_id is not None and (not ids or ids[-1][0] != note_id):
                ids.append((note_id, offset))
            offset += len(line)
        if self.fmt == "csv" and ids:
            end = ids.pop()[1]  # the last note's rows may be incomplete: redo it
        if end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(end)
        return {i for i, _ in ids}

    def _line_id(self, line: bytes) -> str | None:
        text = line.decode("utf-8")
        if self.fmt == "jsonl":
            return str(json.loads(text)["id"])
        row = next(csv.reader([text]))
        return None if row == CSV_FIELDS else row[0]

    def write(self, records: list[str]) -> None:
        """Append the records (note_record JSON strings) and flush them to disk."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        if self.fmt == "jsonl":
            payload = "".join(r + "\n" for r in records)
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
            if new:
                writer.writeheader()
            for record in records:
                writer.writerows(csv_rows(json.loads(record)))
            payload = buf.getvalue()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8", newline="") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())


def csv_rows(record: dict) -> list[dict]:
    """One row per entity; a note without entities (or with an error) still gets one row.

    Line breaks inside an entity's text become spaces, so that every row is one line.
    """
    if "error" in record:
        return [{"id": record["id"], "error": record["error"]}]
    rows = []
    for ent in record["entities"]:
        row = {"id": record["id"], **ent}
        row["text"] = " ".join(ent["text"].split())
        rows.append(row)
    return rows or [{"id": record["id"]}]
