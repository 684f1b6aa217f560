"""Ontology teachers as users load them: assembled pipelines writing span groups with codes."""

from __future__ import annotations

import spacy
from spacy.tokens import DocBin

NOTE = "Patient on metformin for type 2 diabetes, complains of headache."


def spans(nlp, text, key):
    doc = nlp(text)
    return [(s.text, s.label_, s.kb_id_) for s in doc.spans[key]]


def test_note_gets_each_label_from_the_right_teacher(workflow_project):
    rxnorm = spacy.load(workflow_project / "training" / "teachers" / "rxnorm")
    snomed = spacy.load(workflow_project / "training" / "teachers" / "snomed")
    assert spans(rxnorm, NOTE, "rxnorm") == [("metformin", "MEDICATION", "RXNORM:6809")]
    found = {(text, label) for text, label, _ in spans(snomed, NOTE, "snomed")}
    assert found == {("type 2 diabetes", "DISEASE"), ("headache", "SYMPTOM")}
    assert all(code for _, _, code in spans(snomed, NOTE, "snomed"))


def test_stop_listed_terms_do_not_fire(workflow_project):
    rxnorm = spacy.load(workflow_project / "training" / "teachers" / "rxnorm")
    snomed = spacy.load(workflow_project / "training" / "teachers" / "snomed")
    text = "Blood pressure is correct. She drinks alcohol. The disease is a cold."
    assert spans(rxnorm, text, "rxnorm") == []
    assert spans(snomed, text, "snomed") == []
    # The same words inside a longer term still match.
    assert ("common cold", "DISEASE") in {
        (t, lb) for t, lb, _ in spans(snomed, "She has a common cold.", "snomed")
    }


def test_abbreviation_takes_the_long_form_label(workflow_project):
    snomed = spacy.load(workflow_project / "training" / "teachers" / "snomed")
    text = "He has chronic obstructive pulmonary disease (COPD). COPD was stable."
    found = [(t, lb) for t, lb, _ in spans(snomed, text, "snomed")]
    assert found == [
        ("chronic obstructive pulmonary disease", "DISEASE"),
        ("COPD", "DISEASE"),
        ("COPD", "DISEASE"),
    ]


def test_labelled_corpora_keep_gold_and_teacher_groups(workflow_project):
    vocab = spacy.blank("en").vocab
    docs = list(
        DocBin().from_disk(workflow_project / "corpus" / "teachers" / "maccrobat_dev.spacy").get_docs(vocab)
    )
    assert len(docs) == 30
    assert all("rxnorm" in d.spans and "snomed" in d.spans and "gold" in d.spans for d in docs)
    assert sum(len(d.ents) for d in docs) == 889  # gold ents untouched (178 + 176 + 535)
    assert sum(len(d.spans["snomed"]) for d in docs) > 0
