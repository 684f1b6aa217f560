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
    for report in ("corpus_stats.json", "patterns.json"):
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
    for step in ("corpus", "patterns", "teachers", "label-ontology", "score-ontology"):
        assert f"Skipping '{step}'" in again.stdout, step
