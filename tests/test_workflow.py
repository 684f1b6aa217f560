"""The project as users run it: `weasel run all` on a copy of the project, against the real data."""

from __future__ import annotations

import json

from conftest import ROOT, weasel_run_all


def test_weasel_run_all_outputs(workflow_project):
    project = workflow_project
    for name in ("maccrobat_train", "maccrobat_test", "bc5cdr_test", "ncbi_test"):
        assert (project / "corpus" / "gold" / f"{name}.spacy").stat().st_size > 0
    for name in ("aci_bench", "mts_dialog", "mtsamples"):
        assert (project / "corpus" / "unlabelled" / f"{name}.spacy").stat().st_size > 0
        assert (project / "corpus" / "teachers" / f"{name}.spacy").stat().st_size > 0
    # Same inputs, same numbers: the committed reports are what this code produces.
    for report in ("corpus_stats.json", "patterns.json", "combinations.json", "distilled_corpus.json"):
        produced = json.loads((project / "reports" / report).read_text())
        assert produced == json.loads((ROOT / "reports" / report).read_text()), report
    produced = json.loads((project / "reports" / "teachers.json").read_text())
    committed = json.loads((ROOT / "reports" / "teachers.json").read_text())
    for name, teacher in committed["teachers"].items():
        assert produced["teachers"][name]["scores"] == teacher["scores"]
        assert produced["teachers"][name]["words_per_second"] > 0


def test_weasel_rerun_skips_current_steps(workflow_project, data_dir):
    again = weasel_run_all(workflow_project, data_dir)
    assert again.returncode == 0
    steps = (
        "corpus",
        "patterns",
        "teachers",
        "label-ontology",
        "score-ontology",
        "combine",
        "distil-corpus",
        "train-distilled",
        "train-human",
        "evaluate",
        "package",
    )
    for step in steps:
        assert f"Skipping '{step}'" in again.stdout, step


def test_evaluation_report_shape(workflow_project):
    ev = json.loads((workflow_project / "reports" / "evaluation.json").read_text())
    assert set(ev) == {"distilled", "human", "teachers"}
    for sets in ev.values():
        assert set(sets) == {"maccrobat_test", "bc5cdr_test", "ncbi_test"}
        assert set(sets["maccrobat_test"]) == {"MEDICATION", "DISEASE", "SYMPTOM"}
        assert set(sets["ncbi_test"]) == {"DISEASE"}
        for labels in sets.values():
            for s in labels.values():
                for m in ("strict", "lenient"):
                    lo, hi = s[m]["ci95"]
                    assert 0 <= lo <= s[m]["f"] <= hi <= 1
    # The teacher baseline is deterministic: it matches the committed report.
    committed = json.loads((ROOT / "reports" / "evaluation.json").read_text())
    assert ev["teachers"] == committed["teachers"]
    html = (workflow_project / "reports" / "evaluation.html").read_text()
    assert "data:image/png;base64" in html and html.count("entities") >= 3
