"""BRAT standoff reader (MACCROBAT2020: one `.txt` + `.ann` pair per case report).

Discontinuous mentions (`T1<TAB>Type 10 20;30 40<TAB>...`) become one span covering the first
fragment's start to the last fragment's end, so coordinated mentions such as "Hepatitis B and C"
stay one entity; each is counted as "discontinuous_joined". Everything else follows
`align.set_gold_spans`.

Every fragment must be `start end` in ASCII digits with 0 <= start <= end <= len(text), each
starting at or after the end of the one before (BRAT writes them in text order); a text-bound
annotation id (`T12`) may appear once per file. Otherwise the reader fails naming the `.ann`
file and line, never an IndexError from spaCy nor a span silently read from the end of the text
(Python reads `text[-10:-1]` happily). The `.txt` is checked as in `checks` (control characters,
`nlp.max_length`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import CorpusFormatError, read_utf8
from ..labels import DISEASE, MEDICATION, SYMPTOM
from .align import Mention, set_gold_spans
from .checks import INTEGER, check_controls, make_doc
from .stats import CorpusStats

MACCROBAT_LABELS: dict[str, str] = {
    "Medication": MEDICATION,
    "Disease_disorder": DISEASE,
    "Sign_symptom": SYMPTOM,
}


def _fragments(path: Path, offsets: str, text_length: int, lineno: int) -> list[tuple[int, int]]:
    """The `start end;start end` fragments of one annotation, validated (see the module docstring)."""
    fragments: list[tuple[int, int]] = []
    for frag in offsets.split(";"):
        parts = frag.split(" ")
        if not all(INTEGER.fullmatch(x) for x in parts):
            raise CorpusFormatError(path, "offsets are not integers", lineno)
        if len(parts) != 2 or int(parts[0]) > int(parts[1]):
            raise CorpusFormatError(path, "each offset fragment needs 'start end', start <= end", lineno)
        start, end = int(parts[0]), int(parts[1])
        if start < 0:
            raise CorpusFormatError(path, f"negative offset {start}", lineno)
        if end > text_length:
            raise CorpusFormatError(path, f"offset {end} is past the end of the text", lineno)
        if fragments and start < fragments[-1][1]:
            raise CorpusFormatError(
                path,
                f"fragment {len(fragments) + 1} starts at {start}, before the previous one ends at"
                f" {fragments[-1][1]}: fragments must be in ascending order, without overlap",
                lineno,
            )
        fragments.append((start, end))
    return fragments


def parse_ann(path: Path, text: str, label_map: dict[str, str], stats: CorpusStats) -> list[Mention]:
    """Text-bound annotations (`T` lines) of one `.ann` file mapped to our labels.

    Each annotation's text must equal the document at its offsets (fragments joined by a space),
    so a `.ann` paired with the wrong or an edited `.txt` fails instead of shifting labels.

    Relations, events, attributes and notes (R, E, A, M, N, # and * lines) carry no spans of
    their own and are not read.
    """
    mentions = []
    first_line: dict[str, int] = {}
    # Split on "\n" only: str.splitlines() would also break on characters such as U+2028 or
    # U+0085 inside mention text and shift every line number after them.
    for lineno, line in enumerate(read_utf8(path).split("\n"), start=1):
        if not line.startswith("T"):
            continue
        fields = line.rstrip("\r").split("\t", 2)  # the mention text itself may hold a tab
        if len(fields) != 3:
            raise CorpusFormatError(path, "text-bound annotation needs 3 tab-separated fields", lineno)
        type_and_offsets = fields[1].split(" ", 1)
        if len(type_and_offsets) != 2:
            raise CorpusFormatError(path, "missing entity type or offsets", lineno)
        source_type, offsets = type_and_offsets
        ann_id = fields[0]
        if ann_id in first_line:
            message = f"annotation id {ann_id} already on line {first_line[ann_id]}"
            raise CorpusFormatError(path, message, lineno)
        first_line[ann_id] = lineno
        fragments = _fragments(path, offsets, len(text), lineno)
        # MACCROBAT 25661749.ann carries a trailing tab and blank in one text column: compare stripped.
        if " ".join(text[a:b] for a, b in fragments).strip() != fields[2].strip():
            raise CorpusFormatError(
                path, "annotation text does not match the document at its offsets", lineno
            )
        stats.raw_types[source_type] += 1
        label = label_map.get(source_type)
        if label is None:
            stats.ignored_types[source_type] += 1
            continue
        if len(fragments) > 1:
            stats.adjustments["discontinuous_joined"] += 1
        mentions.append(Mention(fragments[0][0], fragments[-1][1], label, source_type))
    return mentions


def read_brat_dir(
    nlp: Language,
    directory: Path,
    doc_ids: list[str],
    stats: CorpusStats,
    label_map: dict[str, str] = MACCROBAT_LABELS,
) -> Iterator[Doc]:
    """Yield one Doc per document id, with gold spans; empty documents are skipped and counted."""
    for doc_id in doc_ids:
        txt_path, ann_path = directory / f"{doc_id}.txt", directory / f"{doc_id}.ann"
        if not ann_path.exists():
            raise CorpusFormatError(ann_path, "annotation file missing for this document")
        text = read_utf8(txt_path)
        check_controls(text, txt_path, 1, doc_id)
        mentions = parse_ann(ann_path, text, label_map, stats)
        if not text.strip():
            stats.skipped["empty_document"] += 1
            stats.skipped["mention_in_empty_document"] += len(mentions)
            continue
        doc = make_doc(nlp, text, txt_path, 1, doc_id)
        doc.user_data["doc_id"] = doc_id
        set_gold_spans(doc, mentions, stats)
        stats.add_doc(doc)
        yield doc


def brat_doc_ids(directory: Path) -> list[str]:
    """Ids of the `.txt` files in a BRAT folder, sorted."""
    return sorted(p.stem for p in directory.glob("*.txt"))
