"""Lexicon terms -> span-ruler phrase patterns: normalised, stop-listed, one label per term.

Which lexicons feed which teacher is chosen in `configs/teachers/lexicons.cfg` through the
registered loaders below, so licensed users swap in RxNorm RRF or SNOMED CT RF2 by config.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.util import registry

from . import lexicons
from .lexicons import Term

# Qualifiers that ICD-10-CM and SNOMED titles carry but notes never write.
_QUALIFIER = re.compile(
    r"(,\s*|\s+)(unspecified|nos|not elsewhere classified|nec|uncomplicated|without complications?)$"
)
_LEADING = re.compile(r"^(unspecified|other specified|other)\s+")
_BRACKETS = re.compile(r"\s*[\(\[][^\(\)\[\]]*[\)\]]")
_SPACE = re.compile(r"\s+")
MIN_CHARS = 3
MAX_WORDS = 8


def load_stop_list(path: Path) -> set[str]:
    """One lower-case term per line; `#` starts a comment."""
    lines = (line.split("#", 1)[0].strip().lower() for line in path.read_text(encoding="utf-8").split("\n"))
    return {line for line in lines if line}


@registry.misc("clin_distill.stop_list.v1")
def stop_list(path: str | None = None) -> list[str]:
    """The stop list's terms for `clin_stop_terms` at training (configs/student.cfg); none without
    a path (the human-label student)."""
    return sorted(load_stop_list(Path(path))) if path else []


def normalise(term: str) -> str:
    """Lower-case, drop bracketed parts ("(primary)", "[Glucophage]") and NOS-style qualifiers."""
    text = _SPACE.sub(" ", term.lower()).strip()
    previous = None
    while previous != text:
        previous = text
        text = _BRACKETS.sub("", text).strip()
        text = _QUALIFIER.sub("", text).strip()
        text = _LEADING.sub("", text).strip()
        text = text.strip(" ,;:.-")
    return text


def plural(text: str) -> str | None:
    """English plural of a term's last word ("renal cyst" -> "renal cysts"), or None.

    Terms ending in a digit, in "s", or in a non-letter are left alone.
    """
    last = text.rsplit(" ", 1)[-1]
    if not last.isalpha() or last.endswith(("s", "x", "z")) or len(last) < 4:
        return None
    if last.endswith(("ch", "sh")):
        return text + "es"
    if last.endswith("y") and last[-2] not in "aeiou":
        return text[:-1] + "ies"
    return text + "s"


def reject_reason(text: str, stop: set[str]) -> str | None:
    if len(text) < MIN_CHARS:
        return "too_short"
    if not any(c.isalpha() for c in text):
        return "no_letters"
    if text in STOP_WORDS or text in stop:
        return "stop_list"
    if len(text.split()) > MAX_WORDS:
        return "too_long"
    return None


def build_patterns(
    terms: Iterable[Term], stop: set[str], source_priority: list[str], add_plurals: bool = False
) -> tuple[list[dict[str, str]], dict[str, Counter]]:
    """Patterns `{"label", "pattern", "id"}`, one per normalised term, and counts per source.

    A term that several sources list takes its label and code from the source that comes first
    in `source_priority` (within one source, the first listing). So a symptom-specific source
    can outrank a disease source, and HPO, whose "phenotypic abnormalities" include many
    diseases, can be put last. With `add_plurals`, each term also yields its plural (ranked
    after every listed form, so a lexicon's own entry for the plural wins).
    """
    rank = {source: i for i, source in enumerate(source_priority)}
    chosen: dict[str, tuple[int, str, str, set[str]]] = {}  # text -> (rank, label, code, labels)
    counts: dict[str, Counter] = defaultdict(Counter)
    plurals: list[tuple[str, Term]] = []
    for t in terms:
        text = normalise(t.term)
        reason = reject_reason(text, stop)
        counts[t.source]["terms"] += 1
        if reason:
            counts[t.source][f"rejected_{reason}"] += 1
            continue
        if add_plurals and (form := plural(text)) and not reject_reason(form, stop):
            plurals.append((form, t))
        _choose(chosen, text, rank.get(t.source, len(rank)), t)
    for form, t in plurals:
        if form not in chosen:
            counts[t.source]["plurals_added"] += 1
        _choose(chosen, form, len(rank) + rank.get(t.source, len(rank)), t)
    patterns = []
    for text in sorted(chosen):
        _, label, code, labels = chosen[text]
        if len(labels) > 1:
            counts["_conflicts"][f"{label}_over_{'_'.join(sorted(labels - {label}))}"] += 1
        patterns.append({"label": label, "pattern": text, "id": code})
        counts["_patterns"][label] += 1
    return patterns, counts


def _choose(chosen: dict[str, tuple[int, str, str, set[str]]], text: str, r: int, t: Term) -> None:
    previous = chosen.get(text)
    if previous is None:
        chosen[text] = (r, t.label, t.code, {t.label})
        return
    previous[3].add(t.label)
    if r < previous[0]:
        chosen[text] = (r, t.label, t.code, previous[3])


# Registered loaders: `@misc = "clin_distill.<name>.v1"` in configs/teachers/lexicons.cfg.


@registry.misc("clin_distill.rxnorm_rrf.v1")
def rxnorm_rrf(path: Path) -> list[Term]:
    return list(lexicons.load_rxnorm_rrf(Path(path)))


@registry.misc("clin_distill.rxnorm_prescribable.v1")
def rxnorm_prescribable(folder: Path) -> list[Term]:
    return list(lexicons.load_rxnorm_prescribable(Path(folder)))


@registry.misc("clin_distill.drug_ner.v1")
def drug_ner() -> list[Term]:
    return list(lexicons.load_drug_ner())


@registry.misc("clin_distill.snomed_rf2.v1")
def snomed_rf2(path: Path) -> list[Term]:
    return list(lexicons.load_snomed_rf2(Path(path)))


@registry.misc("clin_distill.icd10cm.v1")
def icd10cm(skip_chapters: str = "") -> list[Term]:
    return list(lexicons.load_icd10cm(skip_chapters))


@registry.misc("clin_distill.disease_ontology.v1")
def disease_ontology(labels_tsv: Path, obo: str = "") -> list[Term]:
    obo_path = Path(obo) if obo and Path(obo).exists() else None
    return list(lexicons.load_disease_ontology(Path(labels_tsv), obo_path))


@registry.misc("clin_distill.hpo.v1")
def hpo(disease_xrefs: str = "") -> list[Term]:
    cuis = lexicons.disease_ontology_umls(Path(disease_xrefs)) if disease_xrefs else None
    return list(lexicons.load_hpo(cuis))


@registry.misc("clin_distill.symptom_ontology.v1")
def symptom_ontology(path: Path) -> list[Term]:
    return list(lexicons.load_symptom_ontology(Path(path)))
