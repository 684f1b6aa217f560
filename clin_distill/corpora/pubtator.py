"""PubTator reader (BC5CDR, NCBI-disease): title and abstract lines, then tab-separated mentions.

Document text is `title + " " + abstract`, the convention the offsets in both corpora assume.
Mention lines have 6 columns (pmid, start, end, text, type, id) or 7 for composite mentions
(the last column lists the parts; the mention stays one span). 4-column lines are relations
(BC5CDR `CID`) and are not entities. Identifiers "-1" (no concept) become an empty `kb_id`.
A PMID seen twice in one file (NCBI train has 8528200 twice) is kept once when the repeat is
exact (same title, abstract and mention lines): the repeat is skipped and counted as
"duplicate_pmid"; a repeat with other content fails naming both lines. Offsets are ASCII
integers with 0 <= start < end <= len(text). Title and abstract are checked as in `checks`
(control characters, `nlp.max_length`), with the file and line named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import CorpusFormatError, read_utf8
from ..labels import DISEASE, MEDICATION
from .align import Mention, set_gold_spans
from .checks import INTEGER, check_controls, make_doc
from .stats import CorpusStats

# BC5CDR "Chemical" covers drugs but also other chemicals (e.g. toxins, metabolites): mapping
# it to MEDICATION is an approximation, documented in the README.
BC5CDR_LABELS: dict[str, str] = {"Chemical": MEDICATION, "Disease": DISEASE}
NCBI_LABELS: dict[str, str] = {
    "SpecificDisease": DISEASE,
    "DiseaseClass": DISEASE,
    "Modifier": DISEASE,
    "CompositeMention": DISEASE,
}


@dataclass
class _Record:
    pmid: str
    line: int
    title: str | None = None
    abstract: str | None = None
    mentions: list[tuple[int, list[str]]] = field(default_factory=list)

    def content(self) -> tuple[str | None, str | None, tuple[tuple[str, ...], ...]]:
        """What an exact repeat of this document must share with it."""
        return self.title, self.abstract, tuple(tuple(fields) for _, fields in self.mentions)


def _records(path: Path) -> Iterator[_Record]:
    """Group a PubTator file's lines into documents, failing on any malformed line."""
    record: _Record | None = None
    for lineno, line in enumerate(read_utf8(path).split("\n"), start=1):  # not splitlines(): see brat.py
        line = line.rstrip("\r")
        if not line.strip():
            if record is not None:
                yield record
                record = None
            continue
        if "|" in line.split("\t", 1)[0]:
            parts = line.split("|", 2)
            if len(parts) != 3 or parts[1] not in ("t", "a"):
                raise CorpusFormatError(path, "expected 'PMID|t|title' or 'PMID|a|abstract'", lineno)
            pmid, kind, text = parts
            if kind == "t":
                check_controls(text, path, lineno, pmid)
                if record is not None:
                    yield record
                record = _Record(pmid, lineno, title=text)
            elif record is None or record.pmid != pmid or record.abstract is not None:
                raise CorpusFormatError(path, "abstract line without its title line", lineno)
            else:
                check_controls(text, path, lineno, pmid, doc_offset=len(record.title or "") + 1)
                record.abstract = text
            continue
        fields = line.split("\t")
        if record is None or fields[0] != record.pmid:
            raise CorpusFormatError(path, "annotation line outside its document", lineno)
        if len(fields) == 4:  # relation line, e.g. "PMID<TAB>CID<TAB>D1<TAB>D2"
            continue
        if len(fields) not in (6, 7):
            raise CorpusFormatError(
                path, f"mention line needs 6 or 7 tab-separated fields, has {len(fields)}", lineno
            )
        record.mentions.append((lineno, fields))
    if record is not None:
        yield record


def read_pubtator(nlp: Language, path: Path, label_map: dict[str, str], stats: CorpusStats) -> Iterator[Doc]:
    """Yield one Doc per PubTator document with gold spans, `kb_id` = concept id."""
    seen: dict[str, _Record] = {}
    for rec in _records(path):
        text = f"{rec.title or ''} {rec.abstract or ''}"
        mentions = []
        for lineno, fields in rec.mentions:
            _, start, end, surface, source_type, concept = fields[:6]
            if not (INTEGER.fullmatch(start) and INTEGER.fullmatch(end)):
                raise CorpusFormatError(path, "offsets are not integers", lineno)
            start_i, end_i = int(start), int(end)
            if not 0 <= start_i < end_i <= len(text):
                raise CorpusFormatError(path, f"offsets {start_i}-{end_i} outside the document", lineno)
            # NCBI train line 3249 carries trailing blanks in its text column; offsets are right.
            if text[start_i:end_i].strip() != surface.strip():
                raise CorpusFormatError(
                    path, "mention text does not match the document at its offsets", lineno
                )
            stats.raw_types[source_type] += 1
            label = label_map.get(source_type)
            if label is None:
                stats.ignored_types[source_type] += 1
                continue
            kb_id = "" if concept == "-1" else concept
            mentions.append(Mention(start_i, end_i, label, source_type, kb_id))
        if rec.pmid in seen:
            first = seen[rec.pmid]
            if first.content() != rec.content():
                raise CorpusFormatError(
                    path, f"PMID {rec.pmid} already on line {first.line} with other content", rec.line
                )
            stats.skipped["duplicate_pmid"] += 1
            stats.skipped["mention_in_duplicate_pmid"] += len(mentions)
            continue
        seen[rec.pmid] = rec
        if not text.strip():
            stats.skipped["empty_document"] += 1
            stats.skipped["mention_in_empty_document"] += len(mentions)
            continue
        doc = make_doc(nlp, text, path, rec.line, rec.pmid)
        doc.user_data["doc_id"] = rec.pmid
        set_gold_spans(doc, mentions, stats)
        stats.add_doc(doc)
        yield doc
