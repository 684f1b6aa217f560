"""`clin_stop_terms`: the teachers' stop list applied to the student's entities, on a real note."""

from __future__ import annotations

import spacy
from spacy.tokens import Span

from clin_distill.corpora.brat import read_brat_dir
from clin_distill.corpora.stats import CorpusStats
from clin_distill.student.stop_terms import FACTORY
from clin_distill.teachers.patterns import load_stop_list, stop_list
from conftest import ROOT

STOP_LIST = ROOT / "configs/teachers/stop_list.txt"


def note_with_stop_term_entities(nlp, data_dir):
    """A MACCROBAT note (troponin, a lab analyte, in its text) with its gold entities plus every
    stop-list token tagged MEDICATION, as a student that learnt them would."""
    doc = next(read_brat_dir(nlp, data_dir / "maccrobat2020", ["23035161"], CorpusStats()))
    stop = load_stop_list(STOP_LIST)
    gold = [e for e in doc.ents if e.text.lower() not in stop]
    taken = {i for e in gold for i in range(e.start, e.end)}
    wrong = [Span(doc, t.i, t.i + 1, "MEDICATION") for t in doc if t.lower_ in stop and t.i not in taken]
    doc.set_ents([*gold, *wrong])
    return doc, gold, wrong


def test_stop_terms_remove_only_stop_list_entities_and_travel_with_the_pipeline(nlp, data_dir, tmp_path):
    doc, gold, wrong = note_with_stop_term_entities(nlp, data_dir)
    assert gold and "troponin" in {s.text.lower() for s in wrong}
    pipe = nlp.add_pipe(FACTORY)
    assert pipe(doc).ents == doc.ents and len(doc.ents) == len(gold) + len(wrong)  # no terms: no change
    pipe.initialize(nlp=nlp, terms=stop_list(str(STOP_LIST)))  # as training initializes it (student.cfg)
    kept = pipe(doc)
    assert [(e.start, e.end, e.label_) for e in kept.ents] == [(e.start, e.end, e.label_) for e in gold]
    assert all(t.ent_iob_ == "O" for s in wrong for t in s)  # removed, not left missing
    nlp.to_disk(tmp_path / "pipeline")
    again = spacy.load(tmp_path / "pipeline").get_pipe(FACTORY)
    assert again.terms == pipe.terms and "troponin" in again.terms


def test_the_trained_students_run_the_filter_after_ner(workflow_project):
    """The distilled student is trained with the filter (so dev scoring picks model-best with it)
    holding the file's terms, and the package runs it; the human-label student's holds none."""
    nlp = spacy.load(workflow_project / "training/distilled/model-best")
    assert nlp.pipe_names[nlp.pipe_names.index("ner") + 1] == FACTORY
    assert nlp.get_pipe(FACTORY).terms == frozenset(load_stop_list(STOP_LIST))
    package = next((workflow_project / "packages").glob("en_clin_distilled-*/en_clin_distilled/en_*-*"))
    pipeline = spacy.util.load_config(package / "config.cfg")["nlp"]["pipeline"]
    assert pipeline[pipeline.index("ner") + 1] == FACTORY
    human = spacy.load(workflow_project / "training/human/model-best")
    assert FACTORY in human.pipe_names and human.get_pipe(FACTORY).terms == frozenset()
