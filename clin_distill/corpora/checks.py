"""Checks every reader applies to a document's text before spaCy sees it.

Control characters: a document holding a Unicode control character (category Cc: U+0000-U+001F
and U+007F-U+009F) other than tab, line feed and carriage return is rejected, naming the file,
line, document and code point. They never occur in the real corpora; where they do they mean a
broken export (a UTF-16 file read as UTF-8 puts a NUL between every letter), and spaCy would keep
"chest\\x00pain" as one labelled token. Rejecting keeps offsets and texts exactly as published.

Length: a document longer than the reader's `nlp.max_length` (spaCy's default 1,000,000
characters) is rejected naming file, line and document, instead of spaCy's E088 without a file.
The longest real document has 12,722 characters (an MTSamples note); a million-character "note"
is more likely an unclosed quote or a missing blank line than a patient record. A caller who
means to read such texts raises `max_length` on the tokenizer-only pipeline it passes in, and
the reader follows.
"""

from __future__ import annotations

import re
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import CorpusFormatError

# Offsets as the standoff formats write them: ASCII digits (int() would also take "1_0", " 7", "٣").
INTEGER = re.compile("-?[0-9]+")
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Line breaks as the file's reader counts them: "\n" for BRAT and PubTator (see brat.py),
# "\r\n", "\r" or "\n" for CSV (csv.reader's line_num over a newline="" stream).
LF = re.compile("\n")
CSV_LINE_BREAK = re.compile("\r\n|\r|\n")


def check_controls(
    text: str,
    path: Path,
    first_line: int,
    doc_id: str,
    line_break: re.Pattern[str] = LF,
    doc_offset: int = 0,
) -> None:
    """Fail on the first control character of `text`, found at line `first_line` of `path`.

    `doc_offset` is where `text` starts in the document (PubTator's abstract follows its title):
    the error gives the character offset in the document, as standoff annotations count.
    """
    found = CONTROL_CHARS.search(text)
    if found is None:
        return
    line = first_line + len(line_break.findall(text, 0, found.start()))
    raise CorpusFormatError(
        path,
        f"document {doc_id}: control character U+{ord(found.group()):04X} at character"
        f" {doc_offset + found.start()} (only tab, line feed and carriage return are allowed)",
        line,
    )


def make_doc(nlp: Language, text: str, path: Path, line: int, doc_id: str) -> Doc:
    """`nlp.make_doc`, failing with file, line and document when the text is over `nlp.max_length`."""
    if len(text) > nlp.max_length:
        raise CorpusFormatError(
            path,
            f"document {doc_id} has {len(text):,} characters, over nlp.max_length ({nlp.max_length:,});"
            " split it, or raise max_length on the tokenizer-only pipeline passed to the reader",
            line,
        )
    return nlp.make_doc(text)
