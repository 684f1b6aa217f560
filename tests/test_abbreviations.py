"""`clin_abbreviations`: a short form defined in a real abstract takes its long form's label at every
use, and only where the long form is an entity."""

from __future__ import annotations

from itertools import islice

import spacy
from spacy.tokens import Span

from clin_distill.corpora.pubtator import BC5CDR_LABELS, read_pubtator
from clin_distill.corpora.stats import CorpusStats
from clin_distill.linking.linker import ABBREVIATIONS_FACTORY
from clin_distill.student.merge_adjacent import FACTORY as MERGE_ADJACENT


def bc5cdr_dev(nlp, data_dir, doc_id: str):
    path = data_dir / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt"
    docs = read_pubtator(nlp, path, BC5CDR_LABELS, CorpusStats())
    return next(d for d in islice(docs, 40) if d.user_data["doc_id"] == doc_id)


def test_each_use_of_a_short_form_takes_its_long_forms_label(data_dir):
    # PMID 16157917: "lamotrigine (LTG)" (Chemical) and "myoclonic jerks (MJ)" (Disease), each
    # short form used again later; gold labels every use.
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = nlp.get_pipe("sentencizer")(bc5cdr_dev(nlp, data_dir, "16157917"))
    gold = [(e.start, e.end, e.label_) for e in doc.ents]
    uses = {e.text: e.label_ for e in doc.ents if e.text in ("LTG", "MJ")}
    assert uses == {"LTG": "MEDICATION", "MJ": "DISEASE"}
    # what the student finds: the long forms, none of the short forms
    doc.set_ents([e for e in doc.ents if e.text not in uses])
    assert len(doc.ents) < len(gold)

    out = nlp.add_pipe(ABBREVIATIONS_FACTORY)(doc)
    assert [(e.start, e.end, e.label_) for e in out.ents] == gold


def test_nothing_is_added_when_the_long_form_is_no_entity(data_dir):
    # PMID 18363626: "magnetic resonance imaging (MRI)", no entity, used five times
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = nlp.get_pipe("sentencizer")(bc5cdr_dev(nlp, data_dir, "18363626"))
    assert sum(t.text == "MRI" for t in doc) >= 3
    before = [(e.start, e.end, e.label_) for e in doc.ents]
    assert before
    out = nlp.add_pipe(ABBREVIATIONS_FACTORY)(doc)
    assert [(e.start, e.end, e.label_) for e in out.ents] == before
    # ...and the long form made an entity by hand: every use follows it
    mri = [t.i for t in doc if t.text == "MRI"]
    long = next(doc[i - 4 : i - 1] for i in mri if doc[i - 1].text == "(")
    assert long.text == "magnetic resonance imaging"
    doc.set_ents([Span(doc, long.start, long.end, label="DISEASE")], default="unmodified")
    out = nlp.get_pipe(ABBREVIATIONS_FACTORY)(doc)
    assert {(e.start, e.label_) for e in out.ents if e.text == "MRI"} == {(i, "DISEASE") for i in mri}


def test_the_trained_students_and_the_package_run_it_last_before_the_linker(workflow_project):
    package = next((workflow_project / "packages").glob("en_clin_distilled-*/en_clin_distilled/en_*-*"))
    for path in ("training/distilled/model-best", "training/human/model-best"):
        names = spacy.load(workflow_project / path).pipe_names
        assert names[-2:] == [MERGE_ADJACENT, ABBREVIATIONS_FACTORY]
    pipeline = spacy.util.load_config(package / "config.cfg")["nlp"]["pipeline"]
    assert pipeline[-3:] == [MERGE_ADJACENT, ABBREVIATIONS_FACTORY, "clin_linker"]
