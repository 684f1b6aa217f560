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
        "label-llm",
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
        "benchmark",
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


def test_llm_teacher_report(workflow_project):
    """The local LLM teacher ran for real inside the workflow: scored like the ontology teachers,
    every request counted by the server too, hosted teachers skipped with their reason."""
    report = json.loads((workflow_project / "reports" / "llm_teachers.json").read_text())
    smollm2 = report["teachers"]["smollm2"]
    assert set(smollm2["scores"]["maccrobat_dev"]) == {"MEDICATION", "DISEASE", "SYMPTOM"}
    for s in smollm2["scores"]["maccrobat_dev"].values():
        assert set(s) == {"strict", "lenient"} and 0 <= s["strict"]["f"] <= s["lenient"]["f"] <= 1
    acct = smollm2["accounting"]
    assert acct["notes"] == 30 + report["sample_notes"] and acct["failed"] == 0
    assert acct["requests"] == acct["requests_served_this_run"] >= acct["notes"]
    assert acct["prompt_tokens"] > 0 and acct["completion_tokens"] > 0
    assert set(report["skipped"]) == {"gpt-4o", "o1-mini", "gemini-flash", "azure-gpt-4o"}
    assert report["cost_per_1k_notes_usd"]["gpt-4o"] > report["cost_per_1k_notes_usd"]["gemini-flash"] > 0
