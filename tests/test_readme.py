"""README.md's numbers come from the committed reports: it must equal what they generate."""

from __future__ import annotations

import json
import shutil

import pytest

from clin_distill.readme import render
from conftest import ROOT


def test_readme_is_what_the_reports_generate():
    readme = (ROOT / "README.md").read_text()
    assert render(readme, ROOT / "reports", ROOT / "project.yml") == readme, (
        "README.md is stale: run `python scripts/readme.py README.md reports`"
    )
    assert len(readme.splitlines()) <= 160


def test_a_changed_report_makes_the_readme_stale(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", reports)
    ev = json.loads((reports / "evaluation.json").read_text())
    ev["distilled"]["maccrobat_test"]["MEDICATION"]["strict"]["f"] = 0.999
    (reports / "evaluation.json").write_text(json.dumps(ev))
    readme = (ROOT / "README.md").read_text()
    fresh = render(readme, reports, ROOT / "project.yml")
    assert fresh != readme and "| distilled student (float32) | 0.999" in fresh
    with pytest.raises(ValueError, match="no <!-- generated:speed --> block"):
        render(readme.replace("<!-- generated:speed -->", ""), reports, ROOT / "project.yml")


def test_the_no_bf16_speed_comes_from_its_own_report(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", reports)
    readme = (ROOT / "README.md").read_text()
    b = json.loads((reports / "benchmark_no_bf16.json").read_text())
    words = b["student"]["words_per_second"]
    sentence = f"labels {words:,.0f} words/s, {b['ratio_to_ceiling']:.3f} of its ceiling"
    assert sentence in render(readme, reports, ROOT / "project.yml")
    (reports / "benchmark_no_bf16.json").unlink()
    assert "benchmark_no_bf16" not in render(readme, reports, ROOT / "project.yml")
