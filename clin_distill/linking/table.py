"""The linker's table: every normalised lexicon term -> its codes, from configs/teachers/lexicons.cfg.

The same loaders and normalisation as the teachers' patterns (`teachers/patterns.py`), so a term a
teacher matches is a term the linker can code. Per term the codes of every source that lists it
come in `source_priority` order (the first is the code the teacher puts on the span), each
followed by its cross-references: MeSH and DrugBank ids from drug-named-entity-recognition, MeSH /
UMLS / SNOMED CT / ICD-10-CM ids that the Disease Ontology lists for its diseases (and, through
those, for the ICD-10-CM codes and UMLS concepts it maps), and the MeSH / UMLS ids in the HPO and
Symptom Ontology files.
"""

from __future__ import annotations

import bz2
import csv
import pickle
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

from ..errors import CorpusFormatError
from ..labels import MEDICATION
from ..teachers.lexicons import Term, obo_terms
from ..teachers.patterns import normalise, plural, reject_reason

# Cross-reference prefixes as the sources spell them -> ours.
XREF_PREFIXES = {
    "MESH": "MESH",
    "MSH": "MESH",
    "UMLS_CUI": "UMLS",
    "UMLS": "UMLS",
    "ICD10CM": "ICD10CM",
    "SNOMEDCT": "SNOMEDCT",
}
# Residual categories: ICD-10-CM's "Other hypertension" (I1A) or "... NEC" name what is left once
# the specific codes are taken. The patterns drop "other" to match the bare term, so such a code
# is listed for "hypertension"; it goes after every other code the term has (cross-references
# included: I10 through the Disease Ontology), and stays first only where it is all there is.
_RESIDUAL = re.compile(r"^\s*other\b|\b(nec|not elsewhere classified)\s*$", re.IGNORECASE)


def curie(xref: str) -> str | None:
    """ "MSH:D006394" -> "MESH:D006394", "SNOMEDCT_US_2025_09_01:72538006" -> "SNOMEDCT:72538006"."""
    prefix, _, value = xref.strip().strip('"').partition(":")
    if not value:
        return None
    if prefix.startswith("SNOMEDCT"):
        prefix = "SNOMEDCT"
    ours = XREF_PREFIXES.get(prefix)
    return f"{ours}:{value.strip()}" if ours else None


class Xrefs:
    """code -> cross-referenced codes with a weight, merged from the ontology files.

    Weight 1: the ontology lists the pair itself (DOID -> MeSH). Weight 0.5: the pair goes through
    a third concept (an ICD-10-CM code or UMLS concept -> the DOIDs that list it -> their MeSH ids).
    """

    def __init__(self) -> None:
        self.map: dict[str, dict[str, float]] = defaultdict(dict)

    def add(self, code: str, other: str | None, weight: float = 1.0) -> None:
        if other and other != code:
            self.map[code][other] = max(weight, self.map[code].get(other, 0.0))

    def of(self, code: str) -> list[str]:
        return list(self.weighted(code))

    def weighted(self, code: str) -> dict[str, float]:
        """Cross-references of a code; an ICD-10-CM code without its own takes its nearest
        parent's at half weight (a broader concept)."""
        if code in self.map:
            return self.map[code]
        if code.startswith("ICD10CM:"):
            value = code.split(":", 1)[1]
            while "." in value or len(value) > 3:
                value = value[:-1].rstrip(".")
                if f"ICD10CM:{value}" in self.map:
                    return {k: w / 2 for k, w in self.map[f"ICD10CM:{value}"].items()}
        return {}


def disease_ontology_xrefs(xrefs: Xrefs, xref_tsv: Path, obo: Path | None) -> None:
    """DOID -> MeSH, UMLS, SNOMED CT, ICD-10-CM; and ICD-10-CM / UMLS -> the DOIDs' MeSH ids."""
    pairs: list[tuple[str, str]] = []
    with xref_tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = [h.strip('"') for h in next(reader, [])]
        if header[:3] != ["id", "label", "xref"]:
            raise CorpusFormatError(xref_tsv, "expected columns id, label, xref", 1)
        for row in reader:
            if len(row) >= 3 and (other := curie(row[2])):
                pairs.append((row[0].strip('"'), other))
    if obo is not None:
        for stanza in obo_terms(obo):
            for x in stanza.get("xref", []):
                if other := curie(x.split(" ", 1)[0]):
                    pairs.append((stanza["id"][0], other))
    for doid, other in pairs:
        xrefs.add(doid, other)
    mesh_of = defaultdict(list)
    for doid, other in pairs:
        if other.startswith("MESH:"):
            mesh_of[doid].append(other)
    for doid, other in pairs:
        if other.startswith(("ICD10CM:", "UMLS:")):
            for mesh in mesh_of.get(doid, []):
                xrefs.add(other, mesh, 0.5)


def obo_xrefs(xrefs: Xrefs, path: Path) -> None:
    """HP:/SYMP: ids -> their MeSH and UMLS xrefs, and the MeSH ids their UMLS concepts lead to."""
    for stanza in obo_terms(path):
        code = stanza.get("id", [""])[0]
        for x in stanza.get("xref", []):
            if other := curie(x.split(" ", 1)[0]):
                xrefs.add(code, other)
                for via, weight in xrefs.weighted(other).items() if other.startswith("UMLS:") else []:
                    xrefs.add(code, via, weight / 2)


def drug_ner_xrefs(xrefs: Xrefs) -> tuple[dict[str, str], list[Term]]:
    """DRUGNER:<id> (the pattern code) -> DrugBank and MeSH ids.

    Returns DRUGNER id -> primary id, and the canonical names as terms: the package's variant
    list, which the teacher matches, leaves out some canonical names ("creatinine", "ammonia"),
    but a student's entity with that name should still get the code.
    """
    with bz2.open(files("drug_named_entity_recognition") / "drug_ner_dictionary.pkl.bz2", "rb") as f:
        data = pickle.load(f)  # noqa: S301 - the package's own data file
    entries = data["drug_canonical_to_data"]
    # The package's `mesh_id` is often not the drug's own MeSH descriptor but a class several drugs
    # share, mostly a pharmacological action (haloperidol D018726 "Dopamine Antagonists", fentanyl
    # and alfentanil D018686 "Anesthetics, Intravenous"). On BC5CDR dev chemical names it matched
    # the gold descriptor for 2 of 335 names whose id other drugs share, and for 20 of 32 ids held
    # by one drug only: a shared id is kept as MESH_CLASS, not as the drug's MeSH code.
    holders = Counter(info["mesh_id"] for info in entries.values() if info.get("mesh_id"))
    primary = {}
    canonical_terms = []
    for name, info in entries.items():
        ids = []
        if info.get("drugbank_id"):
            ids.append(f"DRUGBANK:{info['drugbank_id']}")
        if mesh := info.get("mesh_id"):
            ids.append(f"MESH:{mesh}" if holders[mesh] == 1 else f"MESH_CLASS:{mesh}")
        if not ids:
            continue
        own = f"DRUGNER:{info.get('drugbank_id') or info.get('mesh_id')}"
        primary[own] = ids[0]
        canonical_terms.append(Term(name, MEDICATION, own, "drug_ner_canonical"))
        for other in ids[1:]:
            xrefs.add(ids[0], other)
    return primary, canonical_terms


def build_table(
    terms: Iterable[Term],
    source_priority: list[str],
    xrefs: Xrefs,
    rename: dict[str, str],
    add_plurals: bool = False,
) -> dict[str, list[str]]:
    """{normalised term: codes}: each listing source's code in priority order, then cross-refs,
    then residual categories' codes (`_RESIDUAL`).

    Terms and plurals are kept as `build_patterns` keeps them, so every pattern the teacher can
    match has an entry; the stop list is not applied (it keeps lab analytes such as "chloride"
    out of the teachers' labels, but a student's entity with that name still gets its code).
    Codes without an id (drug-named-entity-recognition names
    with neither DrugBank nor MeSH id) are dropped.
    """
    rank = {source: i for i, source in enumerate(source_priority)}
    found: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    order = 0
    plurals = []
    for t in terms:
        text = normalise(t.term)
        if reject_reason(text, set()):
            continue
        code = rename.get(t.code, t.code)
        if code.startswith("DRUGNER:"):
            continue
        order += 1
        residual = bool(_RESIDUAL.search(t.term))
        found[text].append((residual, rank.get(t.source, len(rank)), order, code))
        if add_plurals and (form := plural(text)) and not reject_reason(form, set()):
            plurals.append((form, residual, rank.get(t.source, len(rank)), code))
    for form, residual, r, code in plurals:
        order += 1
        found[form].append((residual, len(rank) + r, order, code))
    table = {}
    for text, listed in found.items():
        primary: list[str] = []
        votes: dict[str, float] = {}
        residuals = {c for r, *_, c in listed if r} - {c for r, *_, c in listed if not r}
        for *_, code in sorted(listed):
            if code not in primary:
                primary.append(code)
        for code in primary:
            for other, weight in xrefs.weighted(code).items():
                votes[other] = votes.get(other, 0.0) + weight
        # Cross-references most of the term's sources agree on come first (dicts keep insertion
        # order, so ties keep the sources' priority order).
        ranked = sorted(votes, key=lambda c: -votes[c])
        codes = primary + [c for c in ranked if c not in primary]
        if len(residuals) < len(codes):
            codes = [c for c in codes if c not in residuals] + [c for c in codes if c in residuals]
        table[text] = codes
    return table
