"""Merge strategies on hand-built span groups, and the search over teacher subsets."""

from __future__ import annotations

import pytest
import spacy
from spacy.tokens import Doc, Span

from clin_distill.combine.distil import distil_docs, is_dev
from clin_distill.combine.search import search, select, subsets
from clin_distill.combine.strategies import STRATEGIES, combine, intersection, majority, union, weighted
from clin_distill.scoring import score

WORDS = "severe chest pain and acute renal failure after ibuprofen use".split()
#        0      1     2    3   4     5     6       7     8         9


def make_doc(groups: dict[str, list[tuple[int, int, str]]], ents=()) -> Doc:
    doc = Doc(spacy.blank("en").vocab, words=WORDS)
    for name, spans in groups.items():
        doc.spans[name] = [Span(doc, s, e, label) for s, e, label in spans]
    doc.ents = [Span(doc, s, e, label) for s, e, label in ents]
    return doc


def keys(spans):
    return sorted((s.start, s.end, s.label_) for s in spans)


@pytest.fixture
def doc():
    return make_doc(
        {
            "a": [(1, 3, "SYMPTOM"), (4, 7, "DISEASE"), (8, 9, "MEDICATION")],
            "b": [(0, 3, "SYMPTOM"), (5, 7, "DISEASE")],  # nested / longer boundaries
            "c": [(2, 3, "SYMPTOM"), (5, 7, "SYMPTOM")],  # disagrees on the label of 5-7
        }
    )


def test_union_keeps_longest_of_overlaps(doc):
    assert keys(union(doc, "SYMPTOM", ["a", "b", "c"], {})) == [(0, 3, "SYMPTOM"), (5, 7, "SYMPTOM")]
    assert keys(union(doc, "DISEASE", ["a", "b"], {})) == [(4, 7, "DISEASE")]


def test_intersection_needs_exact_boundaries(doc):
    assert keys(intersection(doc, "DISEASE", ["a", "b"], {})) == []
    assert keys(intersection(doc, "SYMPTOM", ["a"], {})) == [(1, 3, "SYMPTOM")]
    doc.spans["d"] = [Span(doc, 1, 3, "SYMPTOM")]
    assert keys(intersection(doc, "SYMPTOM", ["a", "d"], {})) == [(1, 3, "SYMPTOM")]


def test_majority_counts_partial_overlaps(doc):
    # Three teachers overlap on "chest pain" (1-3, 0-3, 2-3): all agree; boundaries tie -> longest.
    assert keys(majority(doc, "SYMPTOM", ["a", "b", "c"], {})) == [(0, 3, "SYMPTOM")]
    # DISEASE 4-7 (a) and 5-7 (b): 2 of 3 teachers -> kept; SYMPTOM 5-7 by c alone -> dropped.
    assert keys(majority(doc, "DISEASE", ["a", "b", "c"], {})) == [(4, 7, "DISEASE")]
    assert (5, 7, "SYMPTOM") not in keys(majority(doc, "SYMPTOM", ["a", "b", "c"], {}))
    # MEDICATION from one teacher of two is not a majority.
    assert keys(majority(doc, "MEDICATION", ["a", "b"], {})) == []


def test_weighted_vote_uses_precision_weights(doc):
    # c alone, but weighted 0.9 against a's and b's 0.1 each: its SYMPTOM 5-7 reaches half the weight.
    w = {"a": 0.1, "b": 0.1, "c": 0.9}
    assert (5, 7, "SYMPTOM") in keys(weighted(doc, "SYMPTOM", ["a", "b", "c"], w))
    # Boundaries follow weight: c's 2-3 outweighs a's 1-3 and b's 0-3.
    assert (2, 3, "SYMPTOM") in keys(weighted(doc, "SYMPTOM", ["a", "b", "c"], w))
    assert keys(weighted(doc, "SYMPTOM", ["a", "b", "c"], {"a": 0.0, "b": 0.0, "c": 0.0})) == []


def test_combine_resolves_cross_label_overlaps(doc):
    selected = {"DISEASE": (["a"], "union"), "SYMPTOM": (["c"], "union"), "MEDICATION": (["a"], "union")}
    # c's SYMPTOM 5-7 lies inside a's DISEASE 4-7: the longer span wins.
    assert keys(combine(doc, selected, {})) == [(2, 3, "SYMPTOM"), (4, 7, "DISEASE"), (8, 9, "MEDICATION")]


def test_search_scores_every_subset_and_selects_per_label():
    gold = [(1, 3, "SYMPTOM"), (4, 7, "DISEASE"), (8, 9, "MEDICATION")]
    docs = [
        make_doc(
            {
                "good_med": [(8, 9, "MEDICATION")],
                "good_dis": [(4, 7, "DISEASE"), (1, 3, "DISEASE")],
                "noisy": [(1, 3, "SYMPTOM"), (0, 1, "SYMPTOM"), (5, 7, "DISEASE")],
            },
            ents=gold,
        )
    ]
    teachers = ["good_med", "good_dis", "noisy"]
    results = search({"maccrobat": docs}, teachers, {})
    assert len(subsets(teachers)) == 7
    assert len(results) == (2**3 - 1) * len(STRATEGIES)
    selected = select(results, "maccrobat_dev", ["MEDICATION", "DISEASE", "SYMPTOM"])
    assert selected["MEDICATION"]["subset"] == ["good_med"]  # fewest teachers among equal F1
    # good_dis alone also labels "chest pain" DISEASE (F1 0.67); agreeing with noisy on the
    # overlapping 4-7 / 5-7 and dropping the unsupported span gives F1 1.0.
    assert selected["DISEASE"] == {"subset": ["good_dis", "noisy"], "strategy": "majority", "strict_f": 1.0}
    best_symptom = max(r["scores"]["maccrobat_dev"]["SYMPTOM"]["strict"]["f"] for r in results)
    assert selected["SYMPTOM"]["strict_f"] == best_symptom


def test_distil_docs_drops_gold_and_writes_ents(doc):
    doc.spans["gold"] = [Span(doc, 0, 1, "SYMPTOM")]
    selected = {"SYMPTOM": {"subset": ["b"], "strategy": "union"}}
    out = next(distil_docs([doc], selected, {}))
    assert "gold" not in out.spans
    assert keys(out.ents) == [(0, 3, "SYMPTOM")]


def test_dev_hold_out_is_the_asked_share_and_keyed_by_hash_of_the_id():
    ids = [f"aci_bench:{i}" for i in range(2000)]
    held = [i for i in ids if is_dev(i, 5)]
    assert 80 <= len(held) <= 120  # 5% of 2,000, within hashing noise
    # the hash decides, not the position: sha256("clin-distill-dev:aci_bench:1") % 100 == 0
    assert held[:3] == ["aci_bench:1", "aci_bench:32", "aci_bench:56"]
    assert not any(is_dev(i, 0) for i in ids) and all(is_dev(i, 100) for i in ids)
    assert set(held) <= {i for i in ids if is_dev(i, 10)}  # a larger share keeps the smaller one


def test_score_agrees_with_spacy_scorer(workflow_project):
    from spacy.scorer import Scorer
    from spacy.tokens import DocBin
    from spacy.training import Example

    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(workflow_project / "corpus/teachers/maccrobat_dev.spacy").get_docs(vocab))

    def copy(d, spans):
        c = Doc(d.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d])
        c.spans["x"] = [Span(c, s.start, s.end, s.label_) for s in spans]
        return c

    pred = {id(d): list(d.spans["rxnorm"]) + list(d.spans["snomed"]) for d in docs}
    examples = [Example(copy(d, pred[id(d)]), copy(d, d.ents)) for d in docs]
    spacy_scores = Scorer.score_spans(examples, "x", getter=lambda d, a: d.spans[a], allow_overlap=True)
    ours = score(((pred[id(d)], d) for d in docs), ["MEDICATION", "DISEASE", "SYMPTOM"])
    for label, s in spacy_scores["x_per_type"].items():
        assert ours[label]["strict"] == {k: round(v, 4) for k, v in s.items()}
