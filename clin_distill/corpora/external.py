"""A user's own gold set (BRAT folder, Prodigy or Label Studio JSON/JSONL, spaCy DocBin) as gold Docs.

Every format ends as the project's other gold corpora do (`align.set_gold_spans`): `doc.ents` = the
gold entities, span group "gold" with every mention, `doc.user_data["doc_id"]`, and a `CorpusStats`
that accounts for every document and mention. Source labels go through a label map
(configs/external.cfg); unmapped ones are dropped and counted (`ignored_types`).

Stricter than the public-corpus readers, because an evaluation on one's own annotations must not
quietly change them. Rejected with a CorpusFormatError naming the file and line (the JSONL record's
line, the line where a JSON array's task starts, the `.ann` line; a DocBin's document number):
- spans that overlap after mapping, in tokens, since `doc.ents` can hold only one of them (the
  public readers let `filter_spans` choose);
- spans out of range: not integers, negative, start >= end, end > len(text);
- spans covering only whitespace, or whose given text ("text" in Prodigy and Label Studio, the third
  column in BRAT) differs from the document at their offsets.

Prodigy: records answered "reject" or "ignore" are skipped and counted. Label Studio: the first
annotation of a task not marked `was_cancelled` is used (the others are counted); tasks without one
are skipped and counted, as are result items other than "labels" (relations, choices...). Label
Studio counts offsets in JavaScript string units (UTF-16): for text with characters beyond U+FFFF
they differ from Python's, and the span text check fails naming the task instead of shifting labels.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confection import Config, ConfigValidationError
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..errors import CorpusFormatError, read_utf8
from ..labels import LABELS
from .align import Mention, set_gold_spans
from .brat import brat_doc_ids, parse_ann
from .build import make_nlp
from .checks import check_controls, make_doc
from .stats import CorpusStats

FORMATS = ("auto", "brat", "prodigy", "label-studio", "docbin")
# A JSON record is one line (JSONL) or starts on one (an array element) and the newlines inside its
# text are escaped: check_controls must not count them as lines of the file.
_NO_LINE_BREAK = re.compile(r"(?!)")
_JSON_WS = re.compile(r"[ \t\n\r]*")
_ID_KEYS = ("doc_id", "note_id", "id")  # the user's own id first; Label Studio's task id last


def load_label_map(path: Path) -> dict[str, str]:
    """The `[labels]` section of a label-map config; every target must be one of the model's labels."""
    try:
        config = Config().from_disk(path, interpolate=False)
    except (configparser.Error, ConfigValidationError) as err:
        reason = (getattr(err, "desc", None) or type(err).__name__).strip().split("\n")[0]
        raise CorpusFormatError(path, f"not a valid config: {reason}") from None
    labels = config.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise CorpusFormatError(
            path, f"needs a [labels] section mapping source labels to {', '.join(LABELS)}"
        )
    for source, target in labels.items():
        if target not in LABELS:
            raise CorpusFormatError(
                path, f"[labels] {source} maps to {target!r}, not one of {', '.join(LABELS)}"
            )
    return dict(labels)


def detect_format(path: Path) -> str:
    """A folder is BRAT, `.spacy` a DocBin, `.jsonl`/`.json` Prodigy or Label Studio (by record shape)."""
    if path.is_dir():
        return "brat"
    suffix = path.suffix.lower()
    if suffix == ".spacy":
        return "docbin"
    if suffix in (".jsonl", ".json"):
        return "json"
    raise CorpusFormatError(
        path, "cannot tell the format from the path (a BRAT folder, .jsonl, .json or .spacy): pass a format"
    )


def read_external(
    path: Path, label_map: dict[str, str], fmt: str = "auto", nlp: Language | None = None
) -> tuple[list[Doc], CorpusStats]:
    """Gold Docs of a BRAT folder, Prodigy/Label Studio file or DocBin (`fmt` one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    nlp = nlp or make_nlp()
    stats = CorpusStats()
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "brat":
        docs = list(_read_brat(nlp, path, label_map, stats))
    elif fmt == "docbin":
        docs = list(_read_docbin(nlp, path, label_map, stats))
    else:
        docs = list(_read_json(nlp, path, None if fmt == "json" else fmt, label_map, stats))
    return docs, stats


@dataclass(frozen=True)
class _Span:
    """A span as a JSON record or DocBin gives it, before any check."""

    start: Any
    end: Any
    label: Any
    text: Any
    where: str  # "span 3", "result 2", "entity 5": which one, for the error message
    kb_id: str = ""


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets without surrounding whitespace, as align.set_gold_spans trims them."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _checked(
    path: Path,
    line: int | None,
    doc_id: str,
    text: str,
    spans: list[_Span],
    label_map: dict[str, str],
    stats: CorpusStats,
) -> list[Mention]:
    """Mentions of one record: offsets and text checked (every span, mapped or not), labels mapped."""
    mentions = []
    for s in spans:
        where = f"document {doc_id}, {s.where}"
        if type(s.start) is not int or type(s.end) is not int:  # not bool, not float, not "12"
            raise CorpusFormatError(path, f"{where}: start and end must be integers", line)
        if s.start < 0:
            raise CorpusFormatError(path, f"{where}: negative offset {s.start}", line)
        if s.start >= s.end:
            raise CorpusFormatError(path, f"{where}: start {s.start} is not before end {s.end}", line)
        if s.end > len(text):
            message = f"{where}: end {s.end} is past the end of the text ({len(text)} characters)"
            raise CorpusFormatError(path, message, line)
        if not text[s.start : s.end].strip():
            raise CorpusFormatError(path, f"{where}: span {s.start}-{s.end} covers only whitespace", line)
        if s.text is not None and (
            not isinstance(s.text, str) or s.text.strip() != text[s.start : s.end].strip()
        ):
            raise CorpusFormatError(
                path, f"{where}: span text does not match the document at its offsets", line
            )
        if not isinstance(s.label, str):
            raise CorpusFormatError(path, f"{where}: label must be a string", line)
        stats.raw_types[s.label] += 1
        label = label_map.get(s.label)
        if label is None:
            stats.ignored_types[s.label] += 1
            continue
        mentions.append(Mention(s.start, s.end, label, s.label, s.kb_id))
    return mentions


def _reject_overlaps(
    doc: Doc, mentions: list[Mention], lines: list[int | None], path: Path, doc_id: str
) -> None:
    """Fail on two mentions sharing a token: `doc.ents` could keep only one, and which one would be
    filter_spans' choice, not the annotator's. Whole-token positions as set_gold_spans computes them."""
    placed = []
    for m, line in zip(mentions, lines, strict=True):
        start, end = _trimmed(doc.text, m.start, m.end)
        span = doc.char_span(start, end, alignment_mode="expand")
        if span is not None:  # None: nothing to align; set_gold_spans counts it
            placed.append((span.start, span.end, m, line))
    placed.sort(key=lambda p: (p[0], p[1]))
    widest = None
    for p in placed:
        if widest is not None and p[0] < widest[1]:
            _, _, m, line = p
            other, other_line = widest[2], widest[3]
            on = f" on line {other_line}" if other_line is not None and other_line != line else ""
            raise CorpusFormatError(
                path,
                f"document {doc_id}: span {m.start}-{m.end} ({m.source_type}) overlaps span"
                f" {other.start}-{other.end} ({other.source_type}){on} after label mapping;"
                " gold entities must not overlap",
                line,
            )
        if widest is None or p[1] > widest[1]:
            widest = p


def _gold_doc(
    nlp: Language,
    text: str,
    doc_id: str,
    where: tuple[Path, int | None],
    span_path: Path,
    mentions: list[Mention],
    lines: list[int | None],
    stats: CorpusStats,
) -> Doc | None:
    """The gold Doc of one document (None for an empty text, counted), overlaps rejected."""
    if not text.strip():
        stats.skipped["empty_document"] += 1
        stats.skipped["mention_in_empty_document"] += len(mentions)
        return None
    doc = make_doc(nlp, text, where[0], where[1], doc_id)
    _reject_overlaps(doc, mentions, lines, span_path, doc_id)
    doc.user_data["doc_id"] = doc_id
    set_gold_spans(doc, mentions, stats)
    stats.add_doc(doc)
    return doc


def _mapped_lines(ann_path: Path, label_map: dict[str, str]) -> list[int]:
    """Lines of the `.ann` annotations that parse_ann kept, in its order: it returns Mentions without
    their lines, and an overlap error must name them. parse_ann has validated every T line."""
    lines = []
    for lineno, line in enumerate(read_utf8(ann_path).split("\n"), start=1):
        if line.startswith("T") and line.split("\t", 2)[1].split(" ", 1)[0] in label_map:
            lines.append(lineno)
    return lines


def _read_brat(
    nlp: Language, directory: Path, label_map: dict[str, str], stats: CorpusStats
) -> Iterator[Doc]:
    doc_ids = brat_doc_ids(directory)
    if not doc_ids:
        raise CorpusFormatError(directory, "no .txt files: a BRAT folder holds <id>.txt and <id>.ann pairs")
    for ann_path in sorted(directory.glob("*.ann")):
        if not ann_path.with_suffix(".txt").exists():
            raise CorpusFormatError(ann_path, "text file missing for these annotations")
    for doc_id in doc_ids:
        txt_path, ann_path = directory / f"{doc_id}.txt", directory / f"{doc_id}.ann"
        if not ann_path.exists():
            raise CorpusFormatError(ann_path, "annotation file missing for this document")
        text = read_utf8(txt_path)
        check_controls(text, txt_path, 1, doc_id)
        mentions = parse_ann(ann_path, text, label_map, stats)  # offsets and mention text checked there
        lines: list[int | None] = list(_mapped_lines(ann_path, label_map))
        for m, line in zip(mentions, lines, strict=True):
            if not text[m.start : m.end].strip():
                raise CorpusFormatError(ann_path, f"span {m.start}-{m.end} is empty or only whitespace", line)
        doc = _gold_doc(nlp, text, doc_id, (txt_path, 1), ann_path, mentions, lines, stats)
        if doc is not None:
            yield doc


def _read_docbin(nlp: Language, path: Path, label_map: dict[str, str], stats: CorpusStats) -> Iterator[Doc]:
    """Re-read a DocBin's texts and `doc.ents` (labels mapped) with the project's tokenizer.

    No control-character check: that guards the decoding of text files, and a DocBin was made by
    spaCy. Documents without entity annotation at all (not even "outside") are not gold: skipped."""
    for i, source in enumerate(DocBin().from_disk(path).get_docs(nlp.vocab), start=1):
        if not source.has_annotation("ENT_IOB"):
            stats.skipped["unannotated_document"] += 1
            continue
        doc_id = str(source.user_data.get("doc_id", i))
        spans = [
            _Span(e.start_char, e.end_char, e.label_, None, f"entity {k}", e.kb_id_)
            for k, e in enumerate(source.ents, start=1)
        ]
        number = str(i)  # errors name the document's position in the DocBin
        mentions = _checked(path, None, number, source.text, spans, label_map, stats)
        doc = _gold_doc(nlp, source.text, number, (path, None), path, mentions, [None] * len(mentions), stats)
        if doc is not None:
            doc.user_data["doc_id"] = doc_id
            yield doc


def _json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSONL file, or of a JSON array (Label Studio's JSON export)."""
    text = read_utf8(path)
    first = _JSON_WS.match(text).end()
    if text.startswith("[", first):
        yield from _json_array(path, text, first + 1)
        return
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusFormatError(path, f"not valid JSON ({err.msg}, column {err.colno})", lineno) from None
        yield lineno, record


def _json_array(path: Path, text: str, pos: int) -> Iterator[tuple[int, Any]]:
    """Elements of a JSON array with the line each starts on. Hand-written because `json.load` gives no
    positions: the decoder reads one element at a time (`raw_decode`), the commas are checked here."""
    decoder = json.JSONDecoder()
    line, counted = 1, 0

    def line_at(p: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, p)
        counted = p
        return line

    pos = _JSON_WS.match(text, pos).end()
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            start_line = line_at(pos)
            try:
                record, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise CorpusFormatError(
                    path, f"not valid JSON ({err.msg}, column {err.colno})", err.lineno
                ) from None
            yield start_line, record
            pos = _JSON_WS.match(text, pos).end()
            if text.startswith(",", pos):
                pos = _JSON_WS.match(text, pos + 1).end()
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise CorpusFormatError(path, "expected ',' or ']' after an array element", line_at(pos))
    if text[pos:].strip():
        raise CorpusFormatError(path, "text after the end of the JSON array", line_at(pos))


def _shape(record: Any) -> str | None:
    if isinstance(record, dict):
        if isinstance(record.get("data"), dict):
            return "label-studio"
        if isinstance(record.get("text"), str):
            return "prodigy"
    return None


def _record_id(*sources: dict) -> str | None:
    for source in sources:
        for key in _ID_KEYS:
            if isinstance(source.get(key), str | int) and not isinstance(source.get(key), bool):
                return str(source[key])
    return None


def _prodigy(path: Path, line: int, record: dict, stats: CorpusStats) -> tuple[str, str, list[_Span]] | None:
    """Text, id and spans of one Prodigy task; None for a rejected or ignored one (counted)."""
    answer = record.get("answer", "accept")
    if answer != "accept":
        stats.skipped[f"prodigy_answer_{answer}"] += 1
        return None
    spans = record.get("spans") or []
    if not isinstance(spans, list):
        raise CorpusFormatError(path, "'spans' must be a list", line)
    out = []
    for k, s in enumerate(spans, start=1):
        if not isinstance(s, dict) or not {"start", "end", "label"} <= s.keys():
            raise CorpusFormatError(path, f"span {k} needs 'start', 'end' and 'label'", line)
        out.append(_Span(s["start"], s["end"], s["label"], s.get("text"), f"span {k}"))
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return record["text"], _record_id(meta, record) or f"line {line}", out


def _label_studio(
    path: Path, line: int, task: dict, stats: CorpusStats
) -> tuple[str, str, list[_Span]] | None:
    """Text, id and spans of one Label Studio task; None for a task without a usable annotation."""
    data = task["data"]
    if not isinstance(data.get("text"), str):
        raise CorpusFormatError(path, "task 'data' has no 'text' string (the labelled text's field)", line)
    annotations = task.get("annotations", task.get("completions")) or []
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        stats.skipped["unannotated_task"] += 1
        return None
    if len(usable) > 1:
        stats.skipped["other_annotation_of_task"] += len(usable) - 1
    out = []
    for k, item in enumerate(usable[0].get("result") or [], start=1):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ("labels", None) or not isinstance(item, dict):
            stats.skipped[f"result_type_{kind}"] += 1
            continue
        value = item.get("value")
        if not isinstance(value, dict) or not {"start", "end", "labels"} <= value.keys():
            raise CorpusFormatError(path, f"result {k} needs value.start, value.end and value.labels", line)
        if not isinstance(value["labels"], list):
            raise CorpusFormatError(path, f"result {k}: value.labels must be a list", line)
        out += [
            _Span(value["start"], value["end"], lb, value.get("text"), f"result {k}")
            for lb in value["labels"]
        ]
    return data["text"], _record_id(data, task) or f"line {line}", out


def _read_json(
    nlp: Language, path: Path, expected: str | None, label_map: dict[str, str], stats: CorpusStats
) -> Iterator[Doc]:
    """Prodigy or Label Studio records (`expected`, or the first record's shape); no mixing."""
    for line, record in _json_records(path):
        shape = _shape(record)
        if shape is None:
            raise CorpusFormatError(
                path,
                "neither a Prodigy task ('text', 'spans') nor a Label Studio task ('data', 'annotations')",
                line,
            )
        expected = expected or shape
        if shape != expected:
            raise CorpusFormatError(path, f"a {shape} record where {expected} records are read", line)
        read = (
            _prodigy(path, line, record, stats)
            if shape == "prodigy"
            else _label_studio(path, line, record, stats)
        )
        if read is None:
            continue
        text, doc_id, spans = read
        check_controls(text, path, line, doc_id, line_break=_NO_LINE_BREAK)
        mentions = _checked(path, line, doc_id, text, spans, label_map, stats)
        doc = _gold_doc(nlp, text, doc_id, (path, line), path, mentions, [line] * len(mentions), stats)
        if doc is not None:
            yield doc
