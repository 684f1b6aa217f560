"""Merge strategies on hand-built span groups, and the search over teacher subsets."""

from __future__ import annotations

from collections import Counter

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span

from clin_distill.combine.calibrate import calibrate_docs, calibration_table
from clin_distill.combine.distil import distil_docs, is_dev
from clin_distill.combine.inputs import load_docs
from clin_distill.combine.label_model import label_model
from clin_distill.combine.search import (
    ALL_STRATEGIES,
    DEV_MEAN,
    expand,
    namers,
    search_label,
    select,
    select_joint,
    subsets,
    teacher_weights,
)
from clin_distill.combine.strategies import combine, intersection, majority, union, weighted
from clin_distill.scoring import score, score_spans

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
    assert keys(combine([doc], selected, {})[0]) == [
        (2, 3, "SYMPTOM"),
        (4, 7, "DISEASE"),
        (8, 9, "MEDICATION"),
    ]
    with pytest.raises(ValueError, match="did not label"):
        combine([doc], {"DISEASE": (["a", "llm"], "union")}, {})


def test_search_scores_every_subset_per_label_and_selects_on_the_selection_set():
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
        for _ in range(4)
    ]
    teachers = ["good_med", "good_dis", "noisy"]
    dev = {"maccrobat_dev": docs}
    by_label = {}
    for label in ("MEDICATION", "DISEASE", "SYMPTOM"):
        own = namers(dev, teachers, label)
        by_label[label] = search_label(dev, label, own, {t: 1.0 for t in own}, "maccrobat_dev")
    # Each label is searched over the teachers that name it: 1, 2 and 1 of them.
    assert [len(by_label[lb]) for lb in by_label] == [1 * 5, 3 * 5, 1 * 5]
    assert len(subsets(teachers)) == 7 and len(ALL_STRATEGIES) == 5
    rows = expand(by_label, teachers, "maccrobat_dev")
    assert len(rows) == (2**3 - 1) * 5  # every subset x strategy, reduced per label to its namers
    row = {(r[0], r[1]): r[2:] for r in rows}
    assert row[("good_med", "union")] == [1.0, 0.0, 0.0]  # names no DISEASE or SYMPTOM: nothing predicted
    selected = select(by_label, "maccrobat_dev")
    assert selected["MEDICATION"]["subset"] == ["good_med"]
    # good_dis alone also labels "chest pain" DISEASE (F1 0.67); agreeing with noisy on the
    # overlapping 4-7 / 5-7 and dropping the unsupported span gives F1 1.0 (majority is the first
    # strategy reaching it; fewer teachers would win a tie).
    assert selected["DISEASE"]["subset"] == ["good_dis", "noisy"]
    assert selected["DISEASE"]["strategy"] == "majority" and selected["DISEASE"]["strict_f"] == 1.0
    best_symptom = max(r["scores"]["maccrobat_dev"]["strict"]["f"] for r in by_label["SYMPTOM"])
    assert selected["SYMPTOM"]["strict_f"] == best_symptom


def test_dev_mean_selects_what_holds_on_every_dev_set():
    """`a` is perfect on maccrobat_dev and wrong on bc5cdr_dev; `a` and `b` agreeing (majority) is
    right on both. An LLM-like teacher that labelled maccrobat_dev only cannot compete on the mean."""
    gold = [(4, 7, "DISEASE")]
    mac = [
        make_doc({"a": [(4, 7, "DISEASE")], "b": [(4, 7, "DISEASE"), (1, 3, "DISEASE")], "llm": gold}, gold)
        for _ in range(3)
    ]
    bc5 = [make_doc({"a": [(5, 7, "DISEASE")], "b": [(4, 7, "DISEASE")]}, gold) for _ in range(3)]
    dev = {"maccrobat_dev": mac, "bc5cdr_dev": bc5}
    teachers = ["a", "b", "llm"]
    weights = teacher_weights(dev, teachers, ["DISEASE"], DEV_MEAN)["DISEASE"]
    assert weights == {"a": 0.5, "b": 0.6667, "llm": 1.0}  # pooled over the sets each one labelled
    results = {"DISEASE": search_label(dev, "DISEASE", teachers, weights, DEV_MEAN)}
    index = {("+".join(r["subset"]), r["strategy"]): r["scores"] for r in results["DISEASE"]}
    assert index[("a", "union")][DEV_MEAN]["strict"]["f"] == 0.5
    assert index[("llm", "union")][DEV_MEAN] is None and index[("llm", "union")]["bc5cdr_dev"] is None
    on_one = select(results, "maccrobat_dev")["DISEASE"]
    assert on_one["subset"] == ["a"] and on_one["strict_f"] == 1.0
    on_mean = select(results, DEV_MEAN)["DISEASE"]
    assert (on_mean["subset"], on_mean["strategy"], on_mean["strict_f"]) == (["a", "b"], "majority", 1.0)


def test_joint_selection_keeps_a_label_from_losing_its_spans_to_another():
    """`wide` is the best DISEASE teacher alone ("severe chest pain" is a disease in 3 notes), but
    its longer span takes "chest pain" from SYMPTOM in the other 2 once labels are merged: scored
    together, `narrow` for DISEASE keeps SYMPTOM's spans and wins on the mean."""
    docs = [
        make_doc(
            {
                "wide": [(0, 3, "DISEASE"), (4, 7, "DISEASE")],
                "narrow": [(4, 7, "DISEASE")],
                "sym": [(1, 3, "SYMPTOM")],
            },
            ents=[(0, 3, "DISEASE"), (4, 7, "DISEASE")] if i < 3 else [(1, 3, "SYMPTOM"), (4, 7, "DISEASE")],
        )
        for i in range(5)
    ]
    dev = {"maccrobat_dev": docs}
    teachers = ["wide", "narrow", "sym"]
    weights = teacher_weights(dev, teachers, ["DISEASE", "SYMPTOM"], "maccrobat_dev")
    by_label = {
        label: search_label(dev, label, namers(dev, teachers, label), weights[label], "maccrobat_dev")
        for label in ("DISEASE", "SYMPTOM")
    }
    assert select(by_label, "maccrobat_dev")["DISEASE"]["subset"] == ["wide"]  # F1 .889 vs .769 alone
    merged = combine(docs, {"DISEASE": (["wide"], "union"), "SYMPTOM": (["sym"], "union")}, weights)
    assert not any(s.label_ == "SYMPTOM" for spans in merged for s in spans)  # all taken by "wide"
    selected, info = select_joint(dev, by_label, weights, "maccrobat_dev")
    assert selected["DISEASE"]["subset"] == ["narrow"] and selected["SYMPTOM"]["subset"] == ["sym"]
    assert info["changed"] == ["DISEASE"] and info["per_label"]["DISEASE"]["subset"] == ["wide"]
    # (DISEASE .889 + SYMPTOM 0) / 2 per label; (.769 + .571) / 2 jointly
    assert info["mean_per_label_choice"] == pytest.approx(0.444, abs=1e-3)
    assert info["mean_joint_choice"] == pytest.approx(0.670, abs=1e-3)
    assert (selected["DISEASE"]["joint_f"], selected["SYMPTOM"]["joint_f"]) == (0.7692, 0.5714)
    # Where nothing conflicts, the per-label choice stays.
    alone, info = select_joint(dev, {"DISEASE": by_label["DISEASE"]}, weights, "maccrobat_dev")
    assert alone["DISEASE"]["subset"] == ["wide"] and info["changed"] == []


def test_label_model_votes_with_the_teachers_and_cleans_up(doc):
    docs = [doc] + [make_doc({"a": [(1, 3, "SYMPTOM")], "b": [(1, 3, "SYMPTOM")]}) for _ in range(5)]
    before = [{k: keys(v) for k, v in d.spans.items()} for d in docs]
    out = label_model(docs, "SYMPTOM", ["a", "b"])
    assert [{k: keys(v) for k, v in d.spans.items()} for d in docs] == before  # no temporary group left
    for d, spans in zip(docs, out, strict=True):
        assert all(s.label_ == "SYMPTOM" for s in spans)
        voted = {
            t for k in ("a", "b") for s in d.spans[k] if s.label_ == "SYMPTOM" for t in range(s.start, s.end)
        }
        assert {t for s in spans for t in range(s.start, s.end)} <= voted  # only where a teacher voted
    assert all(keys(o) == [(1, 3, "SYMPTOM")] for o in out[1:])  # both teachers agree: kept
    assert label_model(docs, "MEDICATION", ["b"]) == [[] for _ in docs]  # b never names MEDICATION


def test_calibration_relabels_or_drops_frequent_imprecise_terms_only():
    # "failure" as DISEASE: 4 times, never gold -> dropped; "pain" as DISEASE: 3 times, gold
    # SYMPTOM each time -> relabelled; "ibuprofen": 2 times, below the minimum count -> kept.
    docs = [
        make_doc(
            {"t": [(2, 3, "DISEASE"), (6, 7, "DISEASE"), (8, 9, "MEDICATION")]},
            ents=[(2, 3, "SYMPTOM"), (4, 7, "DISEASE")],
        )
        for _ in range(4)
    ]
    docs[2].spans["t"] = [Span(docs[2], 2, 3, "DISEASE"), Span(docs[2], 6, 7, "DISEASE")]
    docs[3].spans["t"] = [Span(docs[3], 6, 7, "DISEASE")]
    table = calibration_table({"maccrobat_dev": docs}, ["t"], min_count=3, min_precision=0.25)
    assert table["t"] == {
        "DISEASE|failure": {"n": 4, "precision": 0.0, "action": "drop"},
        "DISEASE|pain": {"n": 3, "precision": 0.0, "action": "relabel", "label": "SYMPTOM"},
    }
    # NCBI annotates only DISEASE: there the gold SYMPTOM of "pain" is no evidence, it is dropped.
    assert calibration_table({"ncbi_dev": docs}, ["t"])["t"]["DISEASE|pain"]["action"] == "drop"
    out = list(calibrate_docs(docs, table))
    assert keys(out[0].spans["t"]) == [(2, 3, "SYMPTOM"), (8, 9, "MEDICATION")]


def test_llm_spans_join_the_teacher_docs_by_id(tmp_path):
    a = make_doc({"rules": [(8, 9, "MEDICATION")]})
    b = make_doc({"rules": []})
    a.user_data["doc_id"], b.user_data["doc_id"] = "note:1", "note:2"
    DocBin(docs=[a, b], store_user_data=True).to_disk(tmp_path / "maccrobat_dev.spacy")
    llm = make_doc({"smollm2": [(4, 7, "DISEASE")]})
    llm.user_data["doc_id"] = "note:2"
    (tmp_path / "llm" / "smollm2").mkdir(parents=True)
    DocBin(docs=[llm], store_user_data=True).to_disk(tmp_path / "llm" / "smollm2" / "maccrobat_dev.spacy")
    docs = load_docs(tmp_path, "maccrobat_dev", tmp_path / "llm")
    assert "smollm2" not in docs[0].spans  # the LLM did not label note:1
    assert keys(docs[1].spans["smollm2"]) == [(4, 7, "DISEASE")]
    other = Doc(spacy.blank("en").vocab, words=["other", "words"])
    other.spans["smollm2"] = []
    other.user_data["doc_id"] = "note:1"
    DocBin(docs=[other], store_user_data=True).to_disk(tmp_path / "llm" / "smollm2" / "maccrobat_dev.spacy")
    with pytest.raises(ValueError, match="note:1 has other tokens"):
        load_docs(tmp_path, "maccrobat_dev", tmp_path / "llm")


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

    pred = {id(d): list(d.spans["drug_ner"]) + list(d.spans["icd10cm"]) for d in docs}
    examples = [Example(copy(d, pred[id(d)]), copy(d, d.ents)) for d in docs]
    spacy_scores = Scorer.score_spans(examples, "x", getter=lambda d, a: d.spans[a], allow_overlap=True)
    ours = score(((pred[id(d)], d) for d in docs), ["MEDICATION", "DISEASE", "SYMPTOM"])
    for label, s in spacy_scores["x_per_type"].items():
        assert ours[label]["strict"] == {k: round(v, 4) for k, v in s.items()}


def test_fast_label_model_gives_skweaks_own_spans(workflow_project, monkeypatch):
    """FastHMM's vectorised counts against skweak's HMM on real teacher-labelled dev notes: the same
    fitted parameters, bit for bit, and so the same spans."""
    import numpy as np
    import skweak.generative

    import clin_distill.combine.label_model as lm

    vocab = spacy.blank("en").vocab
    path = workflow_project / "corpus/teachers/maccrobat_dev.spacy"
    docs = list(DocBin().from_disk(path).get_docs(vocab))
    cases = [
        ("MEDICATION", ["drug_ner", "rxnorm_prescribable", "medication_rules"]),
        ("SYMPTOM", ["hpo", "symptom_ontology", "symptom_rules", "icd10cm"]),
    ]

    def run(model_class):
        fitted = []

        class Recorded(model_class):
            def _fit(self, *args, **kwargs):
                out = super()._fit(*args, **kwargs)
                fitted.append(self)
                return out

        monkeypatch.setattr(lm, "FastHMM", Recorded)
        spans = [[keys(s) for s in label_model(docs, label, teachers)] for label, teachers in cases]
        return spans, fitted

    fast, fast_models = run(lm.FastHMM)
    stock, stock_models = run(skweak.generative.HMM)
    assert fast == stock
    assert all(sum(map(len, per_doc)) > 0 for per_doc in fast)
    assert len(fast_models) == len(stock_models) == len(cases)
    for a, b in zip(fast_models, stock_models, strict=True):
        assert np.array_equal(a.hmm.startprob_, b.hmm.startprob_)
        assert np.array_equal(a.hmm.transmat_, b.hmm.transmat_)
        assert a.emit_probs.keys() == b.emit_probs.keys()
        assert all(np.array_equal(a.emit_probs[k], b.emit_probs[k]) for k in a.emit_probs)


def test_forked_label_model_fits_equal_the_sequential_ones(workflow_project, monkeypatch):
    """The search's label-model fits on forked workers give the scores of one process, in order."""
    import clin_distill.combine.search as search
    from clin_distill import parallel

    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(workflow_project / "corpus/teachers/maccrobat_dev.spacy").get_docs(vocab))
    dev = {"maccrobat_dev": docs}
    gold = {"maccrobat_dev": search.gold_spans(docs, "MEDICATION")}
    teachers = ("drug_ner", "rxnorm_prescribable", "medication_rules")
    jobs = [("maccrobat_dev", subset) for subset in search.subsets(teachers)]
    forked = search.label_model_scores(dev, gold, "MEDICATION", jobs)
    if parallel.cores() > 1:  # the path above forked: prove it by breaking the fork path
        monkeypatch.setattr(parallel, "ProcessPoolExecutor", None)
        with pytest.raises(TypeError):
            search.label_model_scores(dev, gold, "MEDICATION", jobs)
    monkeypatch.setattr(search, "MAX_WORKERS", 1)
    assert search.label_model_scores(dev, gold, "MEDICATION", jobs) == forked
    assert len(forked) == 7 and len({r["strict"]["f"] for r in forked}) > 1


def test_bc5cdr_folded_cell_scores_symptoms_against_its_disease_label():
    """BC5CDR's Disease covers signs and symptoms: a SYMPTOM prediction of a gold Disease mention
    misses in the DISEASE cell and hits in the folded DISEASE+SYMPTOM cell; MACCROBAT has no fold."""
    from clin_distill.evaluation import folded_counts

    doc = spacy.blank("en")("Cocaine induced seizures and acute renal failure .")
    gold = [Span(doc, 2, 3, "DISEASE"), Span(doc, 4, 7, "DISEASE")]
    pred = [Span(doc, 0, 1, "MEDICATION"), Span(doc, 2, 3, "SYMPTOM"), Span(doc, 5, 7, "DISEASE")]
    per_label = score_spans([(pred, gold)], ["DISEASE"])["DISEASE"]["strict"]
    assert (per_label["p"], per_label["r"]) == (0.0, 0.0)
    c = folded_counts(pred, gold, "bc5cdr")
    assert (c["DISEASE+SYMPTOM", "tp"], c["DISEASE+SYMPTOM", "np"], c["DISEASE+SYMPTOM", "ng"]) == (1, 2, 2)
    assert (c["DISEASE+SYMPTOM", "hp"], c["DISEASE+SYMPTOM", "hg"]) == (2, 2)  # lenient: overlaps hit
    assert folded_counts(pred, gold, "maccrobat") == Counter()


def test_paired_bootstrap_of_two_teachers_on_the_same_notes(workflow_project):
    """Two real teachers on MACCROBAT dev: the difference is theirs, its interval pairs the notes
    (a teacher against itself is exactly 0, swapping the pair negates it) and holds the point."""
    from clin_distill.scoring import bootstrap, doc_counts, paired_bootstrap

    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(workflow_project / "corpus/teachers/maccrobat_dev.spacy").get_docs(vocab))
    labels = ["DISEASE", "SYMPTOM"]
    a = [doc_counts(list(d.spans["icd10cm"]), list(d.ents), labels) for d in docs]
    b = [doc_counts(list(d.spans["hpo"]), list(d.ents), labels) for d in docs]
    ab, ba = paired_bootstrap([(a, b)], labels, n=200), paired_bootstrap([(b, a)], labels, n=200)
    same = paired_bootstrap([(a, a)], labels, n=200)
    whole = {name: bootstrap(x, labels, n=10) for name, x in (("a", a), ("b", b))}
    for label in labels:
        for m in ("strict", "lenient"):
            d = ab[label][m]
            assert d["diff"] == pytest.approx(whole["a"][label][m]["f"] - whole["b"][label][m]["f"], abs=1e-4)
            assert d["ci95"][0] <= d["diff"] <= d["ci95"][1] and d["ci95"][0] < d["ci95"][1]
            assert ba[label][m]["ci95"] == pytest.approx([-d["ci95"][1], -d["ci95"][0]], abs=1e-4)
            assert same[label][m] == {"diff": 0.0, "ci95": [0.0, 0.0]}
    with pytest.raises(ValueError, match="same documents"):
        paired_bootstrap([(a, b[:-1])], labels)
