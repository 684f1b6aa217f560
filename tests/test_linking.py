"""`clin_linker`: codes from the teachers' lexicons, built by the workflow's `linker` step."""

import json

import pytest
import spacy
from spacy.tokens import Span

from clin_distill.linking.linker import abbreviation_pairs, normalise
from clin_distill.linking.table import Xrefs, build_table
from clin_distill.teachers.lexicons import Term


@pytest.fixture(scope="module")
def linker_nlp(workflow_project):
    return spacy.load(workflow_project / "training" / "linker")


def entities(nlp, text, marked):
    """A doc of `text` with the given (surface, label) pairs as entities, in order of appearance."""
    doc = nlp.make_doc(text)
    spans, start = [], 0
    for surface, label in marked:
        begin = text.index(surface, start)
        spans.append(doc.char_span(begin, begin + len(surface), label=label))
        start = begin + len(surface)
    doc.set_ents(spans)
    return nlp(doc)


def test_codes_from_the_lexicons_with_their_systems(linker_nlp):
    doc = entities(
        linker_nlp,
        "Started metformin for type 2 diabetes mellitus; denies chest pain.",
        [("metformin", "MEDICATION"), ("type 2 diabetes mellitus", "DISEASE"), ("chest pain", "SYMPTOM")],
    )
    ents = {e.text: e for e in doc.ents}
    assert ents["metformin"].kb_id_ == "RXNORM:6809" and ents["metformin"]._.code_system == "RxNorm"
    diabetes = ents["type 2 diabetes mellitus"]
    assert diabetes.kb_id_.startswith("ICD10CM:E11") and diabetes._.code_system == "ICD-10-CM"
    assert any(c.startswith("MESH:") for c in diabetes._.codes)  # through the Disease Ontology's xrefs
    assert ents["chest pain"].kb_id_ and ents["chest pain"]._.link == "exact"


def test_drug_classes_are_not_given_as_the_drugs_mesh_code(linker_nlp):
    # drug-named-entity-recognition lists haloperidol with D018726 (Dopamine Antagonists), an id
    # many drugs share; BC5CDR's gold id for haloperidol is D006220, which no shipped lexicon holds.
    doc = entities(
        linker_nlp,
        "Given haloperidol and fentanyl.",
        [("haloperidol", "MEDICATION"), ("fentanyl", "MEDICATION")],
    )
    for ent in doc.ents:
        assert ent.kb_id_, ent.text
        assert not [c for c in ent._.codes if c.startswith("MESH:")], (ent.text, ent._.codes)
    assert "MESH_CLASS:D018726" in doc.ents[0]._.codes


def test_abbreviation_takes_its_long_forms_codes(linker_nlp):
    text = "Chronic obstructive pulmonary disease (COPD) is stable. COPD inhaler daily."
    doc = entities(
        linker_nlp,
        text,
        [("Chronic obstructive pulmonary disease", "DISEASE"), ("COPD", "DISEASE"), ("COPD", "DISEASE")],
    )
    long, short, again = doc.ents
    assert long.kb_id_ and short.kb_id_ == long.kb_id_ == again.kb_id_
    assert {short._.link, again._.link} == {"abbreviation"}
    assert normalise("COPD") in abbreviation_pairs(doc)


def test_every_form_of_the_mention_adds_its_codes(linker_nlp):
    # RxNorm lists "lactate" as written; drug-named-entity-recognition lists the MeSH descriptor
    # (D019344, BC5CDR's gold id) under the acid's name, "lactic acid".
    doc = entities(linker_nlp, "Serum lactate rose after metformin.", [("lactate", "MEDICATION")])
    (lactate,) = doc.ents
    assert lactate._.link == "exact" and lactate.kb_id_.startswith("RXNORM:")
    assert "MESH:D019344" in lactate._.codes
    assert linker_nlp.get_pipe("clin_linker").lookup("rxnorm", "lactic acid")[0] in lactate._.codes


def test_unknown_mention_gets_no_code_and_partial_match_finds_the_head(linker_nlp):
    doc = entities(
        linker_nlp,
        "Known severe essential hypertension; also qwertyitis.",
        [("severe essential hypertension", "DISEASE"), ("qwertyitis", "DISEASE")],
    )
    head, unknown = doc.ents
    assert head._.link == "partial" and head.kb_id_
    assert unknown.kb_id_ == "" and unknown._.codes == [] and unknown._.code_system is None


def test_residual_categories_rank_after_every_other_code():
    # ICD-10-CM 2025's titles: "Other hypertension" (I1A) matches "hypertension" once "other" is
    # dropped; the Disease Ontology names it and maps it to I10 (Essential (primary) hypertension).
    xrefs = Xrefs()
    xrefs.add("DOID:10763", "ICD10CM:I10")
    terms = [
        Term("Other hypertension", "DISEASE", "ICD10CM:I1A", "icd10cm"),
        Term("Hypertension", "DISEASE", "DOID:10763", "disease_ontology"),
        Term("Other heart failure", "DISEASE", "ICD10CM:I50.8", "icd10cm"),
        Term("Heart failure, unspecified", "DISEASE", "ICD10CM:I50.9", "icd10cm"),
        Term("Other specified diseases of intestine", "DISEASE", "ICD10CM:K63.89", "icd10cm"),
    ]
    table = build_table(terms, ["icd10cm", "disease_ontology"], xrefs, {})
    assert table["hypertension"] == ["DOID:10763", "ICD10CM:I10", "ICD10CM:I1A"]
    assert table["heart failure"] == ["ICD10CM:I50.9", "ICD10CM:I50.8"]
    # a term only a residual category lists keeps its code first
    assert table["diseases of intestine"] == ["ICD10CM:K63.89"]


def test_hypertension_links_to_essential_hypertension_not_a_residual_category(linker_nlp):
    doc = entities(linker_nlp, "History of hypertension.", [("hypertension", "DISEASE")])
    codes = doc.ents[0]._.codes
    assert [c for c in codes if c.startswith("ICD10CM:")][0] == "ICD10CM:I10", codes
    assert codes[-1] == "ICD10CM:I1A" and doc.ents[0].kb_id_ != "ICD10CM:I1A"


def test_linking_report_measured_on_gold_mentions(workflow_project):
    report = json.loads((workflow_project / "reports" / "linking.json").read_text())
    for split in ("dev", "test"):
        for label in ("MEDICATION", "DISEASE"):
            s = report[split]["shipped"][label]
            assert s["mentions"] > 1000 and 0 < s["known"] <= s["mentions"]
            assert 0 < s["accuracy"] <= 1 and s["accuracy_all_mentions"] <= s["accuracy"]
    # the shipped fallbacks (abbreviations, partial matches) were kept because they help on dev
    dev = report["dev"]
    for label in ("MEDICATION", "DISEASE"):
        assert dev["shipped"][label]["accuracy"] > dev["exact only"][label]["accuracy"]


def test_packaged_model_ends_with_the_linker(workflow_project):
    pipeline = next(
        (workflow_project / "packages").glob("en_clin_distilled-*/en_clin_distilled/en_clin_distilled-*")
    )
    config = spacy.util.load_config(pipeline / "config.cfg")
    assert config["nlp"]["pipeline"][-1] == "clin_linker"
    assert (pipeline / "clin_linker" / "keys.npy").exists()


def test_doc_ents_keep_other_labels_untouched(linker_nlp):
    doc = linker_nlp.make_doc("Seen by Dr Smith for asthma.")
    doc.set_ents([Span(doc, 2, 4, "PERSON"), Span(doc, 5, 6, "DISEASE")])
    doc = linker_nlp(doc)
    person, asthma = doc.ents
    assert person.label_ == "PERSON" and person.kb_id_ == ""
    assert asthma.kb_id_
