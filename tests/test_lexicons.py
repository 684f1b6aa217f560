"""Lexicon loaders on fixtures in the published layouts and on the real open files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from clin_distill.errors import CorpusFormatError
from clin_distill.teachers import lexicons as lx
from clin_distill.teachers.patterns import build_patterns, normalise, plural, reject_reason

FIXTURES = Path(__file__).parent / "fixtures"


def test_rxnorm_rrf_fixture():
    terms = list(lx.load_rxnorm_rrf(FIXTURES / "RXNCONSO.RRF"))
    assert {(t.term, t.code) for t in terms} == {
        ("metformin", "RXNORM:6809"),
        ("Glucophage", "RXNORM:152161"),
        ("metformin hydrochloride", "RXNORM:861007"),  # SCD reduced to its ingredient
        ("Glucophage", "RXNORM:861008"),  # SBD reduced to its brand
        ("aspirin", "RXNORM:1191"),
    }  # SY rows, suppressed rows (SUPPRESS=O) and other sources (MTHSPL) are not read
    assert {t.label for t in terms} == {"MEDICATION"}


def test_rxnorm_rrf_malformed_row(tmp_path):
    path = tmp_path / "RXNCONSO.RRF"
    path.write_text((FIXTURES / "RXNCONSO.RRF").read_text() + "6809|ENG|metformin\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"RXNCONSO.RRF:9: RRF row"):
        list(lx.load_rxnorm_rrf(path))


def test_snomed_rf2_fixture():
    terms = list(lx.load_snomed_rf2(FIXTURES / "sct2_Description_Snapshot-en_INT_20250101.txt"))
    assert sorted((t.term, t.label, t.code) for t in terms) == [
        ("Cephalgia", "SYMPTOM", "SNOMEDCT:25064002"),
        ("Diabetes mellitus type 2", "DISEASE", "SNOMEDCT:44054006"),  # FSN without its tag
        ("Headache", "SYMPTOM", "SNOMEDCT:25064002"),
        ("Type 2 diabetes mellitus", "DISEASE", "SNOMEDCT:44054006"),
    ]  # inactive descriptions and (procedure) concepts are left out


def test_snomed_rf2_rejects_other_files(tmp_path):
    path = tmp_path / "sct2_Concept_Snapshot_INT.txt"
    path.write_text("id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="not an RF2 description file"):
        list(lx.load_snomed_rf2(path))


def test_open_lexicons_on_real_files(data_dir):
    drugs = list(lx.load_drug_ner())
    assert len(drugs) == 107_360
    presc = list(lx.load_rxnorm_prescribable(data_dir / "ontologies" / "rxnorm_prescribable"))
    assert {"metformin", "Glucophage"} <= {t.term for t in presc}
    icd = {t.code: t.label for t in lx.load_icd10cm()}
    assert icd["ICD10CM:R51.9"] == "SYMPTOM" and icd["ICD10CM:E11.9"] == "DISEASE"
    assert "ICD10CM:V00" not in {t.code for t in lx.load_icd10cm(skip_chapters="V")}
    do = list(lx.load_disease_ontology(data_dir / "ontologies" / "HumanDO_2026.tsv"))
    assert len(do) == 12_296
    symp = list(lx.load_symptom_ontology(data_dir / "ontologies" / "symp.obo"))
    assert {"abdominal cramp", "back pain"} <= {t.term for t in symp}


def test_hpo_only_phenotypic_abnormality_and_disease_relabel(data_dir):
    plain = {t.term: t for t in lx.load_hpo()}
    assert plain["Headache"].label == "SYMPTOM"
    assert "Autosomal dominant inheritance" not in plain  # Mode of inheritance, not a phenotype
    cuis = lx.disease_ontology_umls(data_dir / "ontologies" / "allXREFinDO_2026.tsv")
    relabelled = {t.term: t for t in lx.load_hpo(cuis)}
    assert relabelled["Type II diabetes mellitus"].label == "DISEASE"
    assert relabelled["Headache"].label == "SYMPTOM"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Headache, unspecified", "headache"),
        ("Essential (primary) hypertension", "essential hypertension"),
        ("Asthma NOS", "asthma"),
        ("Unspecified asthma, uncomplicated", "asthma"),
        ("metformin 500 MG Oral Tablet [Glucophage]", "metformin 500 mg oral tablet"),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_plural_and_rejections():
    assert plural("renal cyst") == "renal cysts"
    assert plural("varix") is None and plural("ovary") == "ovaries" and plural("rash") == "rashes"
    stop = {"correct"}
    assert reject_reason("correct", stop) == "stop_list"
    assert reject_reason("the", stop) == "stop_list"  # spaCy's English stop words
    assert reject_reason("ms", stop) == "too_short"


def test_build_patterns_source_priority():
    terms = [
        lx.Term("Hypertension", "SYMPTOM", "HP:1", "hpo"),
        lx.Term("hypertension", "DISEASE", "DOID:10763", "disease_ontology"),
        lx.Term("Headache", "SYMPTOM", "SYMP:1", "symptom_ontology"),
        lx.Term("correct", "MEDICATION", "X", "drug_ner"),
    ]
    patterns, counts = build_patterns(
        terms, {"correct"}, ["symptom_ontology", "disease_ontology", "hpo"], True
    )
    by_text = {p["pattern"]: p for p in patterns}
    assert by_text["hypertension"] == {"label": "DISEASE", "pattern": "hypertension", "id": "DOID:10763"}
    assert by_text["headaches"]["label"] == "SYMPTOM"  # plural added
    assert "correct" not in by_text
    # "hypertension" and its plural: both listed as SYMPTOM by HPO, both kept as DISEASE.
    assert counts["_conflicts"] == Counter({"DISEASE_over_SYMPTOM": 2})
