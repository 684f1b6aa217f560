"""BRAT standoff reader (MACCROBAT2020: one `.txt` + `.ann` pair per case report).

Discontinuous mentions (`T1<TAB>Type 10 20;30 40<TAB>...`) become one span covering the first
fragment's start to the last fragment's end, so coordinated mentions such as "Hepatitis B and C"
stay one entity; each is counted as "discontinuous_joined". Everything else follows
`align.set_gold_spans`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import CorpusFormatError, read_utf8
from ..labels import DISEASE, MEDICATION, SYMPTOM
from .align import Mention, set_gold_spans
from .stats import CorpusStats

MACCROBAT_LABELS: dict[str, str] = {
    "Medication": MEDICATION,
    "Disease_disorder": DISEASE,
    "Sign_symptom": SYMPTOM,
}


def parse_ann(path: Path, text: str, label_map: dict[str, str], stats: CorpusStats) -> list[Mention]:
    """Text-bound annotations (`T` lines) of one `.ann` file mapped to our labels.

    Each annotation's text must equal the document at its offsets (fragments joined by a space),
    so a `.ann` paired with the wrong or an edited `.txt` fails instead of shifting labels.

    Relations, events, attributes and notes (R, E, A, M, N, # and * lines) carry no spans of
    their own and are not read.
    """
    mentions = []
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
        try:
            fragments = [tuple(int(x) for x in frag.split(" ")) for frag in offsets.split(";")]
        except ValueError:
            raise CorpusFormatError(path, "offsets are not integers", lineno) from None
        if any(len(f) != 2 or f[0] > f[1] for f in fragments):
            raise CorpusFormatError(path, "each offset fragment needs 'start end', start <= end", lineno)
        if fragments[-1][1] > len(text):
            raise CorpusFormatError(path, f"offset {fragments[-1][1]} is past the end of the text", lineno)
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
        mentions = parse_ann(ann_path, text, label_map, stats)
        if not text.strip():
            stats.skipped["empty_document"] += 1
            stats.skipped["mention_in_empty_document"] += len(mentions)
            continue
        doc = nlp.make_doc(text)
        doc.user_data["doc_id"] = doc_id
        set_gold_spans(doc, mentions, stats)
        stats.add_doc(doc)
        yield doc


def brat_doc_ids(directory: Path) -> list[str]:
    """Ids of the `.txt` files in a BRAT folder, sorted."""
    return sorted(p.stem for p in directory.glob("*.txt"))
