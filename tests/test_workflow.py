"""The project as users run it: `weasel run all` (and `bench`) on a copy of the project, against the
real data; every step's outputs exist, load and are well-formed; reruns skip exactly what a change
does not affect."""

from __future__ import annotations

import json

import spacy
import yaml
from spacy.tokens import DocBin

from conftest import ROOT, SMALL, SMALL_PROFILE, weasel_run
from test_project_deps import PROJECT, files_read

ALL = PROJECT["workflows"]["all"]


def test_every_output_of_all_exists_and_loads(workflow_project):
    project = workflow_project
    vocab = spacy.blank("en").vocab
    spec = yaml.safe_load((project / "project.yml").read_text())
    names = {"${vars.package_name}": "clin_distilled", "${vars.package_version}": "0.1.0"}
    for command in (c for c in spec["commands"] if c["name"] in ALL):
        for out in command.get("outputs", []):
            for var, value in names.items():
                out = out.replace(var, value)
            path = project / out
            assert path.exists(), f"{command['name']}: {out}"
            binaries = [path] if path.suffix == ".spacy" else path.rglob("*.spacy") if path.is_dir() else []
            for binary in binaries:
                assert len(DocBin().from_disk(binary)) > 0, binary
                next(iter(DocBin().from_disk(binary).get_docs(vocab)))
            if path.suffix == ".json":
                json.loads(path.read_text())
    for name in ("training/distilled/model-best", "training/human/model-best", "training/teachers/icd10cm"):
        assert spacy.load(project / name).pipe_names
    # Same inputs, same numbers: the committed reports are what this code produces.
    for report in ("corpus_stats.json", "patterns.json"):
        produced = json.loads((project / "reports" / report).read_text())
        assert produced == json.loads((ROOT / "reports" / report).read_text()), report
    assert_same_combinations(project)


def assert_same_combinations(project):
    """The committed search is what this code produces. The small profile's LLM teacher labels 2
    dev notes, too few to join the search: there every result without an LLM teacher must match,
    and the selection (with the distilled corpus) whenever the committed one has no LLM teacher."""
    produced = json.loads((project / "reports" / "combinations.json").read_text())
    committed = json.loads((ROOT / "reports" / "combinations.json").read_text())
    llm = set(committed["llm_teachers"])
    assert llm, "the committed default run has an LLM teacher in the search"
    keep_selected = not any(llm & set(s["subset"]) for s in committed["selected"].values())
    produced_cal = json.loads((project / "reports" / "calibration.json").read_text())
    committed_cal = json.loads((ROOT / "reports" / "calibration.json").read_text())
    if not SMALL_PROFILE:
        same = {k for k in committed if k != "search_seconds"}  # the one measured number
        assert {k: produced[k] for k in same} == {k: committed[k] for k in same}
        assert produced_cal == committed_cal
    else:
        for key in ("table", "before", "after"):
            kept = {t: v for t, v in committed_cal[key].items() if t not in llm}
            assert {t: v for t, v in produced_cal[key].items() if t not in llm} == kept, key
        assert set(produced["teachers"]) == set(committed["teachers"]) - llm
        for label, results in committed["by_label"].items():
            expected = [r for r in results if not llm & set(r["subset"])]
            assert produced["by_label"][label] == expected, label
        if keep_selected:
            assert produced["selected"] == committed["selected"]
    if keep_selected:
        report = "distilled_corpus.json"
        produced = json.loads((project / "reports" / report).read_text())
        assert produced == json.loads((ROOT / "reports" / report).read_text()), report
    produced = json.loads((project / "reports" / "teachers.json").read_text())
    committed = json.loads((ROOT / "reports" / "teachers.json").read_text())
    for name, teacher in committed["teachers"].items():
        assert produced["teachers"][name]["scores"] == teacher["scores"]
    # the readme step wrote the copy's README from the copy's reports
    assert "| distilled student (float32) |" in (project / "README.md").read_text()


def test_rerun_skips_current_steps_and_reruns_what_a_change_affects(workflow_project, data_dir):
    again = weasel_run(workflow_project, "all", data_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    for step in ALL:
        assert f"Skipping '{step}'" in again.stdout, step
    # A change to one module reruns every step that reads it (found by walking the step scripts'
    # imports, not from project.yml): a step that lost the dep would be skipped here.
    touched = ROOT / "clin_distill" / "evaluation.py"
    readers = {c["name"] for c in PROJECT["commands"] if touched in files_read(c)} & set(ALL)
    assert readers == {"evaluate"}
    copy = workflow_project / touched.relative_to(ROOT)
    copy.write_text(copy.read_text() + "\n# changed by test_workflow\n")
    again = weasel_run(workflow_project, "all", data_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    for step in readers:
        assert f"Skipping '{step}'" not in again.stdout, step
    # the rest skip: the steps before, and those after whose inputs came out the same
    for step in set(ALL) - readers - {"readme"}:
        assert f"Skipping '{step}'" in again.stdout, step


def test_evaluation_report_shape(workflow_project):
    ev = json.loads((workflow_project / "reports" / "evaluation.json").read_text())
    assert set(ev) == {"distilled", "human", "teachers"}
    for sets in ev.values():
        assert set(sets) == {"maccrobat_test", "bc5cdr_test", "ncbi_test"}
        assert set(sets["maccrobat_test"]) == {"MEDICATION", "DISEASE", "SYMPTOM"}
        assert set(sets["ncbi_test"]) == {"DISEASE"}
        assert set(sets["bc5cdr_test"]) == {"MEDICATION", "DISEASE", "DISEASE+SYMPTOM"}
    for student in ("distilled", "human"):  # its DISEASE spans are among the folded cell's predictions
        bc5 = ev[student]["bc5cdr_test"]
        assert bc5["DISEASE+SYMPTOM"]["strict"]["r"] >= bc5["DISEASE"]["strict"]["r"]
    for sets in ev.values():
        for labels in sets.values():
            for s in labels.values():
                for m in ("strict", "lenient"):
                    lo, hi = s[m]["ci95"]
                    assert 0 <= lo <= s[m]["f"] <= hi <= 1
    # paired differences: each student minus the teachers and human minus distilled, on the same notes
    diffs = json.loads((workflow_project / "reports" / "evaluation_differences.json").read_text())
    assert set(diffs) == {"distilled - teachers", "human - teachers", "human - distilled"}
    for name, by_set in diffs.items():
        a, b = name.split(" - ")
        assert set(by_set) == set(ev[a])
        for s, cells in by_set.items():
            for cell, d in cells.items():
                for m in ("strict", "lenient"):
                    point = ev[a][s][cell][m]["f"] - ev[b][s][cell][m]["f"]
                    assert abs(d[m]["diff"] - point) < 1e-3 and d[m]["ci95"][0] <= d[m]["ci95"][1]
    if not SMALL_PROFILE:  # the default workflow reproduces the committed report, students included
        assert ev == json.loads((ROOT / "reports" / "evaluation.json").read_text())
        assert diffs == json.loads((ROOT / "reports" / "evaluation_differences.json").read_text())
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
    dev_docs = SMALL["llm_dev_docs"] if SMALL_PROFILE else 30
    assert acct["notes"] == dev_docs + report["sample_notes"] and acct["failed"] == 0
    assert acct["requests"] == acct["requests_served_this_run"] >= acct["notes"]
    assert acct["prompt_tokens"] > 0 and acct["completion_tokens"] > 0
    assert set(report["skipped"]) == {"gpt-4o", "o1-mini", "gemini-flash", "azure-gpt-4o"}
    assert report["cost_per_1k_notes_usd"]["gpt-4o"] > report["cost_per_1k_notes_usd"]["gemini-flash"] > 0
