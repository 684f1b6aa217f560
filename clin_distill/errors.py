"""Errors that point at the exact place in an input file, never at its content."""

from __future__ import annotations

from pathlib import Path


class CorpusFormatError(ValueError):
    """Raised for malformed input; names the file and, where known, the line (1-based)."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


def read_utf8(path: Path) -> str:
    """Read a text file exactly (no newline translation: offsets index the raw text).

    A non-UTF-8 file fails with its name and byte offset.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusFormatError(path, f"not valid UTF-8 (byte offset {err.start})") from None
