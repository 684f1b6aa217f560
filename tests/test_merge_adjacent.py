"""`clin_merge_adjacent`: a drug name the student tagged word by word, joined again, on a real note."""

from __future__ import annotations

import pytest
import spacy
from spacy.tokens import Span

from clin_distill.corpora.brat import read_brat_dir
from clin_distill.corpora.stats import CorpusStats
from clin_distill.student.merge_adjacent import FACTORY
from clin_distill.student.stop_terms import FACTORY as STOP_TERMS
from conftest import ROOT


def spans(ents, label=None):
    return [(e.start, e.end, e.label_) for e in ents if label is None or e.label_ == label]


# MACCROBAT case reports whose gold MEDICATION mentions never touch, with multi-word mentions of
# other labels too: salts ("lisinopril hydrate", "warfarin potassium", "amiodarone hydrochloride"), and a
# combination written both ways ("ampicillin/sulbactam", "ampicillin-sulbactam").
@pytest.mark.parametrize(
    "note, name", [("22791498", "warfarin potassium"), ("28173879", "ampicillin/sulbactam")]
)
def test_words_of_one_drug_name_are_joined_and_other_labels_left(nlp, data_dir, note, name):
    doc = next(read_brat_dir(nlp, data_dir / "maccrobat2020", [note], CorpusStats()))
    gold = list(doc.ents)
    multi = [e for e in gold if len(e) > 1]
    labels = {e.label_ for e in multi}
    assert "MEDICATION" in labels and labels - {"MEDICATION"}
    # every word of a multi-word mention as its own entity, as the student tags unseen names
    words = [Span(doc, t.i, t.i + 1, e.label_) for e in gold for t in e if not t.is_punct]
    doc.set_ents(words)
    assert len(doc.ents) > len(gold)

    joined = spacy.blank("en").add_pipe(FACTORY)(doc)
    assert spans(joined.ents, "MEDICATION") == spans(gold, "MEDICATION")
    assert name in {e.text for e in joined.ents}
    for label in ("DISEASE", "SYMPTOM"):  # not in the default labels: left as they were
        assert spans(joined.ents, label) == [s for s in spans(words) if s[2] == label]

    # the gap decides: with no gap allowed, nothing is joined
    doc.set_ents(words)
    none = spacy.blank("en").add_pipe(FACTORY, config={"gaps": []})(doc)
    assert spans(none.ents) == spans(words)


def test_the_trained_students_join_after_the_stop_filter(workflow_project):
    """Both students are trained with it (dev scoring picks model-best with it), and the package
    runs it, right after `clin_stop_terms`."""
    package = next((workflow_project / "packages").glob("en_clin_distilled-*/en_clin_distilled/en_*-*"))
    for path in ("training/distilled/model-best", "training/human/model-best"):
        names = spacy.load(workflow_project / path).pipe_names
        assert names[names.index(STOP_TERMS) + 1] == FACTORY
    pipeline = spacy.util.load_config(package / "config.cfg")["nlp"]["pipeline"]
    assert pipeline[pipeline.index(STOP_TERMS) + 1] == FACTORY
    config = spacy.util.load_config(ROOT / "configs/student.cfg")["components"][FACTORY]
    assert config["labels"] == ["MEDICATION"]
