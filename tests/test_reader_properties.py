"""Random BRAT, CSV and PubTator files: every outcome is a located error or a fully counted read.

A located error is a `CorpusFormatError` whose message starts with one of the files written and a
line inside it, and holds no document text. A read is fully counted when every document and
mention in the file is in the output or in a skip counter. Files built to be valid must be read.
`pytest --hypothesis-show-statistics` lists which errors and reads the examples reached.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import spacy
from hypothesis import event, given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from test_readers import assert_accounted

from clin_distill.corpora.brat import MACCROBAT_LABELS, read_brat_dir
from clin_distill.corpora.checks import CONTROL_CHARS, CSV_LINE_BREAK
from clin_distill.corpora.notes import NoteSource, read_notes
from clin_distill.corpora.pubtator import BC5CDR_LABELS, read_pubtator
from clin_distill.corpora.stats import CorpusStats
from clin_distill.errors import CorpusFormatError

PROPERTIES = settings(max_examples=120, deadline=None)  # about 1 s each on 2 cores
NLP = spacy.blank("en")
MARKER = "Qzxv"  # in every document: an error message that holds it leaks document text
CONTROLS = ["\x00", "\x0c", "\x1b", "\x7f", "\x85"]
PIECES = ["chest", "pain", "aspirin", MARKER, " ", " ", "  ", ".", ",", "-", "é", "\u2028", "|", '"', "'"]
TEXT_PIECES = st.sampled_from(PIECES + ["\n", "\r\n", "\t"])
LINE_PIECES = st.sampled_from(PIECES + ["\t"])  # PubTator titles and abstracts
# Annotation lines gone wrong (no control characters: those are for the document text).
GARBAGE = st.lists(st.sampled_from(["1", "-", " ", "\t", ";", "Age", "x", "0", "99", "|"]), max_size=12).map(
    "".join
)


@st.composite
def joined(draw: st.DrawFn, pieces: st.SearchStrategy[str], max_size: int = 25) -> str:
    """Text from `pieces`; one text in six also holds a control character somewhere."""
    parts = draw(st.lists(pieces, max_size=max_size))
    if draw(st.sampled_from([False] * 5 + [True])):
        parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from(CONTROLS)))
    return "".join(parts)


Reader = Callable[[Path, CorpusStats], Iterable[Doc]]


def read_written(
    files: dict[str, str], read: Reader, breaks: Callable[[str], int]
) -> tuple[list[Doc] | None, CorpusStats, CorpusFormatError | None]:
    """Write `files` (name: content) to a fresh folder and read it: (docs or None, stats, error).

    An error must name one of the files and a line inside it (lines as `breaks` counts them), and
    no document text.
    """
    stats = CorpusStats()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for file_name, content in files.items():
            (folder / file_name).write_bytes(content.encode("utf-8"))
        try:
            return list(read(folder, stats)), stats, None
        except CorpusFormatError as err:
            assert err.path.parent == folder and err.path.name in files, err
            assert err.line is not None and 1 <= err.line <= breaks(files[err.path.name]) + 1, err
            assert str(err).startswith(f"{err.path}:{err.line}: ")
            assert MARKER not in str(err)
            event("error: " + re.sub(r"-?\d+|'[^']*'", "#", str(err).split(": ", 1)[1])[:32])  # see docstring
            return None, stats, err


def lf_breaks(text: str) -> int:
    return text.count("\n")


def csv_breaks(text: str) -> int:
    return len(CSV_LINE_BREAK.findall(text))


def first_control_line(text: str, breaks: Callable[[str], int] = lf_breaks) -> int | None:
    found = CONTROL_CHARS.search(text)
    return None if found is None else breaks(text[: found.start()]) + 1


# --- BRAT ---------------------------------------------------------------------------------

BRAT_TYPES = ["Medication", "Sign_symptom", "Disease_disorder", "Age"]
OTHER_ANN_LINES = [
    "R1\tCause Arg1:T1 Arg2:T2",
    "#1\tAnnotatorNotes T1\tnote",
    "A1\tNegation T1",
    "*\tOverlap T1 T2",
]


@st.composite
def ann_line(draw: st.DrawFn, text: str, clean: bool, number: int) -> tuple[str, bool]:
    """One `.ann` line and whether it is valid for `text` (ids are checked by the caller)."""
    kinds = ["valid", "valid", "other"] if clean else ["valid", "offsets", "garbage", "other"]
    kind = draw(st.sampled_from(kinds))
    ann_id = f"T{number if clean else draw(st.integers(1, 4))}"
    source_type = draw(st.sampled_from(BRAT_TYPES))
    if kind == "other":
        return draw(st.sampled_from(OTHER_ANN_LINES)), True
    if kind == "garbage":
        return "T" + draw(GARBAGE), False
    if kind == "valid":
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=6)))
        fragments = list(zip(cuts[0::2], cuts[1::2], strict=False))
        mention = " ".join(text[a:b] for a, b in fragments)
        valid = not any(c in mention for c in "\r\n")  # BRAT splits fragments at line breaks
    else:
        ends = st.integers(-3, len(text) + 3)
        fragments = draw(st.lists(st.tuples(ends, ends), min_size=1, max_size=3))
        mention = draw(st.sampled_from([text[fragments[0][0] : fragments[0][1]], "pain", ""]))
        valid = False
    offsets = ";".join(f"{a} {b}" for a, b in fragments)
    return f"{ann_id}\t{source_type} {offsets}\t{mention}", valid


@st.composite
def brat_pair(draw: st.DrawFn) -> tuple[str, list[str], bool]:
    text = draw(joined(TEXT_PIECES, 40))
    clean = draw(st.booleans())
    drawn = [draw(ann_line(text, clean, number)) for number in range(1, draw(st.integers(0, 8)) + 1)]
    lines = [line for line, _ in drawn]
    ids = [line.split("\t", 1)[0] for line in lines if line.startswith("T")]
    valid = all(v for _, v in drawn) and len(ids) == len(set(ids))
    return text, lines, valid


@PROPERTIES
@given(brat_pair(), st.sampled_from(["\n", "\r\n"]))
def test_random_brat_pairs(pair, newline):
    text, lines, valid = pair
    files = {"d.txt": text, "d.ann": newline.join(lines)}
    docs, stats, err = read_written(files, lambda d, s: read_brat_dir(NLP, d, ["d"], s), lf_breaks)
    control_line = first_control_line(text)
    if err is not None:
        if control_line is not None:
            assert (err.path.name, err.line) == ("d.txt", control_line)
            assert "control character" in str(err)
        else:
            assert not valid, err
        return
    event(f"read: {len(docs)} doc, {sum(stats.spans.values())} spans")
    assert control_line is None
    assert len(docs) + stats.skipped["empty_document"] == 1
    assert_accounted(stats, set(MACCROBAT_LABELS))


# --- CSV notes ----------------------------------------------------------------------------

NOTES = [NoteSource("x", ("n.csv",), "note", "id")]
CORRUPTIONS = ["none"] * 5 + ["drop_quote", "add_quote", "extra_field", "blank_line", "truncate"]


@st.composite
def note_file(draw: st.DrawFn) -> tuple[str, list[list[str]], list[int], str]:
    """CSV text, the rows written (header first), each row's start offset, and the corruption."""
    header = draw(st.permutations(["id", "note", "extra"]))
    terminator, quoting = draw(st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]))
    rows = [list(header)]
    for number in range(1, draw(st.integers(0, 6)) + 1):
        cells = {
            "id": draw(st.sampled_from([str(number)] * 4 + ["", "1", "7"])),
            "note": draw(st.one_of(st.sampled_from(["", " ", f"{MARKER} pain"]), joined(TEXT_PIECES))),
            "extra": draw(st.sampled_from(["", "x", "a,b", 'say "hi"'])),
        }
        rows.append([cells[name] for name in header])
    raw, starts = "", []
    for row in rows:
        buf = io.StringIO()
        csv.writer(buf, lineterminator=terminator, quoting=quoting).writerow(row)
        starts.append(len(raw))
        raw += buf.getvalue()
    corruption = draw(st.sampled_from(CORRUPTIONS))
    at = draw(st.integers(0, len(raw)))
    quotes = [i for i, c in enumerate(raw) if c == '"']
    if corruption == "drop_quote" and quotes:
        i = quotes[at % len(quotes)]
        raw = raw[:i] + raw[i + 1 :]
    elif corruption == "add_quote":
        raw = raw[:at] + '"' + raw[at:]
    elif corruption == "extra_field":
        end = raw.find(terminator, at) % (len(raw) + 1)  # -1 (no line end after `at`): the end
        raw = raw[:end] + ",x" + raw[end:]
    elif corruption == "blank_line":
        pos = [*starts[1:], len(raw)][at % len(starts)]
        raw = raw[:pos] + terminator + raw[pos:]
    elif corruption == "truncate":
        raw = raw[:at]
    return raw, rows, starts, corruption


def expected_notes(rows: list[list[str]], starts: list[int], raw: str) -> tuple[list[str], dict, int | None]:
    """What the documented policy makes of a well-formed file: kept notes, skips, the error line."""
    header, body = rows[0], rows[1:]
    note_at, id_at = header.index("note"), header.index("id")
    first: dict[str, str] = {}
    kept: list[str] = []
    skipped = {"empty_document": 0, "duplicate_text": 0}
    for row_no, (row, start) in enumerate(zip(body, starts[1:], strict=True), start=1):
        line = csv_breaks(raw[:start]) + 1
        note, row_id = row[note_at], row[id_at] or str(row_no)
        if first.setdefault(row_id, note.strip()) != note.strip():
            return kept, skipped, line
        if CONTROL_CHARS.search(note):  # the row's first control character is in its note
            return kept, skipped, csv_breaks(raw[: CONTROL_CHARS.search(raw, start).start()]) + 1
        if not note.strip():
            skipped["empty_document"] += 1
        elif note.strip() in {k.strip() for k in kept}:
            skipped["duplicate_text"] += 1
        else:
            kept.append(note)
    return kept, {k: v for k, v in skipped.items() if v}, None


def strict_parse(raw: str) -> list[list[str]] | None:
    try:
        return list(csv.reader(io.StringIO(raw, newline=""), strict=True))
    except csv.Error:
        return None


@PROPERTIES
@given(note_file())
def test_random_note_files(generated):
    raw, rows, starts, corruption = generated
    docs, stats, error = read_written({"n.csv": raw}, lambda d, s: read_notes(NLP, d, NOTES, s), csv_breaks)
    if docs is not None:
        event(f"read: {len(docs)} notes, skipped {sorted(stats.skipped)}")
    if corruption == "none":
        assert strict_parse(raw) == rows  # the oracle reads back what was written
        kept, skipped, error_line = expected_notes(rows, starts, raw)
        if error_line is not None:
            assert error is not None and error.line == error_line, error
        else:
            assert docs is not None and [d.text for d in docs] == kept
            assert dict(stats.skipped) == skipped
        return
    records = strict_parse(raw)
    if records is None or not records or any(len(r) not in (0, len(records[0])) for r in records[1:]):
        assert docs is None  # broken quoting or a wrong field count is never read
        return
    if docs is not None:  # the rest may fail for a repeated id or a control character
        body = records[1:]
        assert len(docs) + sum(stats.skipped.values()) == len(body)
        assert stats.skipped["blank_line"] == sum(1 for r in body if not r)


# --- PubTator -----------------------------------------------------------------------------


@st.composite
def pubtator_doc(draw: st.DrawFn, pmid: str, clean: bool) -> tuple[list[str], bool]:
    title, abstract = draw(joined(LINE_PIECES)), draw(joined(LINE_PIECES))
    text = f"{title} {abstract}"
    lines, valid = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"], True
    for _ in range(draw(st.integers(0, 4))):
        kinds = ["valid", "valid", "relation"] if clean else ["valid", "offsets", "relation", "garbage"]
        kind = draw(st.sampled_from(kinds))
        source_type = draw(st.sampled_from(["Chemical", "Disease", "Gene"]))
        if kind == "relation":
            lines.append(f"{pmid}\tCID\tD1\tD2")
            continue
        if kind == "garbage":
            lines.append(pmid + draw(GARBAGE))
            valid = False
            continue
        if kind == "valid" and len(text) > 0:
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            surface = text[start:end]
            valid = valid and "\t" not in surface
        else:
            start, end = draw(st.integers(-3, len(text) + 3)), draw(st.integers(-3, len(text) + 3))
            surface = draw(st.sampled_from(["pain", text[max(start, 0) : max(end, 0)]]))
            valid = False
        composite = draw(st.sampled_from(["", "\tpart|part"]))
        lines.append(f"{pmid}\t{start}\t{end}\t{surface}\t{source_type}\tD001{composite}")
    return lines, valid


@st.composite
def pubtator_file(draw: st.DrawFn) -> tuple[str, int, bool, int | None]:
    """File text, number of documents, whether it is valid, the line of its first control character."""
    docs: list[tuple[str, list[str], bool]] = []
    clean = draw(st.booleans())
    for _ in range(draw(st.integers(0, 4))):
        if docs and draw(st.integers(0, 4)) == 0:
            docs.append(docs[draw(st.integers(0, len(docs) - 1))])  # an exact repeat
            continue
        pmid = str(draw(st.integers(1, 9)))
        lines, valid = draw(pubtator_doc(pmid, clean))
        docs.append((pmid, lines, valid))
    first_content: dict[str, list[str]] = {}
    valid = all(v for _, _, v in docs)
    valid = valid and all(first_content.setdefault(pmid, lines) == lines for pmid, lines, _ in docs)
    separator = draw(st.sampled_from(["\n\n", "\n\n\n", "\n \n"]))
    text = separator.join("\n".join(lines) for _, lines, _ in docs) + draw(st.sampled_from(["", "\n"]))
    return text, len(docs), valid, first_control_line(text)


def read_pubtator_in(folder: Path, stats: CorpusStats) -> Iterable[Doc]:
    return read_pubtator(NLP, folder / "x.PubTator.txt", BC5CDR_LABELS, stats)


@PROPERTIES
@given(pubtator_file())
def test_random_pubtator_files(generated):
    text, n_docs, valid, control_line = generated
    docs, stats, err = read_written({"x.PubTator.txt": text}, read_pubtator_in, lf_breaks)
    if err is not None:
        assert not valid or control_line is not None, err
        if valid:
            assert err.line == control_line and "control character" in str(err)
        return
    event(f"read: {len(docs)} docs, {sum(stats.spans.values())} spans")
    assert control_line is None
    assert len(docs) + stats.skipped["duplicate_pmid"] + stats.skipped["empty_document"] == n_docs
    assert_accounted(stats, set(BC5CDR_LABELS))
