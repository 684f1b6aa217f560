"""Ontology and rule teachers as users load them: one assembled pipeline per source, each writing
its own span group (named after it) with the source's codes."""

from __future__ import annotations

import functools

import pytest
import spacy
from spacy.tokens import DocBin

from clin_distill.teachers.labelling import saved_teacher_labels, teacher_dirs

NOTE = "Patient on metformin for type 2 diabetes, complains of headache."
ONTOLOGY = ("rxnorm_prescribable", "drug_ner", "icd10cm", "disease_ontology", "hpo", "symptom_ontology")
RULES = ("medication_rules", "disease_rules", "symptom_rules")


def spans(nlp, text, key):
    doc = nlp(text)
    return [(s.text, s.label_, s.kb_id_) for s in doc.spans[key]]


@functools.cache
def teacher(project, name):
    """Each saved teacher loaded once for this module (loading a lexicon's patterns takes seconds);
    the tests only run them on text."""
    return spacy.load(project / "training" / "teachers" / name)


@pytest.fixture(scope="module", autouse=True)
def _release_teachers():
    yield
    teacher.cache_clear()  # their patterns take memory for the rest of the session otherwise


def test_each_source_is_a_teacher_with_its_own_codes(workflow_project):
    found = {t: spans(teacher(workflow_project, t), NOTE, t) for t in ONTOLOGY}
    assert found["rxnorm_prescribable"] == [("metformin", "MEDICATION", "RXNORM:6809")]
    assert found["drug_ner"] == [("metformin", "MEDICATION", "DRUGNER:DB00331")]
    assert found["icd10cm"] == [("headache", "SYMPTOM", "ICD10CM:R51")]  # chapter R: a symptom
    assert found["symptom_ontology"] == [("headache", "SYMPTOM", "SYMP:0000504")]
    # HPO names phenotypes of both kinds: its disease-like terms vote DISEASE.
    assert [(t, lb) for t, lb, _ in found["hpo"]] == [("type 2 diabetes", "DISEASE"), ("headache", "SYMPTOM")]
    text = "He was started on lisinopril 10 mg daily and presented with chest pain and acute renal failure."
    assert spans(teacher(workflow_project, "disease_ontology"), text, "disease_ontology") == [
        ("renal failure", "DISEASE", "DOID:1074")
    ]


def test_rule_teachers_fire_on_stems_suffixes_heads_and_cues(workflow_project):
    text = "He was started on lisinopril 10 mg daily and presented with chest pain and acute renal failure."
    assert spans(teacher(workflow_project, "medication_rules"), text, "medication_rules") == [
        ("lisinopril", "MEDICATION", "")
    ]
    assert spans(teacher(workflow_project, "disease_rules"), text, "disease_rules") == [
        ("acute renal failure", "DISEASE", "")
    ]
    assert spans(teacher(workflow_project, "symptom_rules"), text, "symptom_rules") == [
        ("chest pain", "SYMPTOM", "")
    ]
    assert spans(teacher(workflow_project, "disease_rules"), "The diagnosis was made.", "disease_rules") == []
    # findings that MACCROBAT annotates as signs (Sign_symptom)
    finding = "CT showed a 3 cm mass and two lesions."
    assert spans(teacher(workflow_project, "symptom_rules"), finding, "symptom_rules") == [
        ("mass", "SYMPTOM", ""),
        ("lesions", "SYMPTOM", ""),
    ]


def test_stop_listed_terms_do_not_fire(workflow_project):
    text = "Blood pressure is correct. She drinks alcohol. The disease is a cold."
    for name in ONTOLOGY:
        assert spans(teacher(workflow_project, name), text, name) == [], name
    # The same words inside a longer term still match.
    do = teacher(workflow_project, "disease_ontology")
    assert ("common cold", "DISEASE") in {
        (t, lb) for t, lb, _ in spans(do, "She has a common cold.", "disease_ontology")
    }


def test_abbreviation_takes_the_long_form_label(workflow_project):
    text = "He has chronic obstructive pulmonary disease (COPD). COPD was stable."
    found = [(t, lb, code) for t, lb, code in spans(teacher(workflow_project, "icd10cm"), text, "icd10cm")]
    assert found == [
        ("chronic obstructive pulmonary disease", "DISEASE", "ICD10CM:J44"),
        ("COPD", "DISEASE", "ICD10CM:J44"),
        ("COPD", "DISEASE", "ICD10CM:J44"),
    ]


def test_labelled_corpora_keep_gold_and_every_teacher_group(workflow_project):
    vocab = spacy.blank("en").vocab
    docs = list(
        DocBin().from_disk(workflow_project / "corpus" / "teachers" / "maccrobat_dev.spacy").get_docs(vocab)
    )
    assert len(docs) == 30
    assert all(set(ONTOLOGY + RULES + ("gold",)) <= set(d.spans) for d in docs)
    assert sum(len(d.ents) for d in docs) == 889  # gold ents untouched (178 + 176 + 535)
    assert all(sum(len(d.spans[t]) for d in docs) > 0 for t in ONTOLOGY + RULES)


def test_saved_labels_are_the_loaded_teachers_own(workflow_project):
    dirs = {p.name: p for p in teacher_dirs(workflow_project / "training" / "teachers")}
    assert set(dirs) == set(ONTOLOGY + RULES)
    for name in ("symptom_ontology", "hpo", *RULES):  # hpo names two labels
        loaded = teacher(workflow_project, name)
        assert saved_teacher_labels(dirs[name]) == tuple(loaded.pipeline[0][1].labels), name
    assert saved_teacher_labels(dirs["hpo"]) == ("DISEASE", "SYMPTOM")
