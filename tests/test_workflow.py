"""The project as users run it: `weasel run all` on a copy of the project, against the real data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PROJECT_FILES = ("project.yml", "scripts", "configs", "clin_distill")


def test_weasel_run_all(data_dir, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, project / name)
    weasel = Path(sys.executable).parent / "weasel"
    cmd = [str(weasel), "run", "all", ".", f"--vars.shared_data={data_dir}"]
    result = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("maccrobat_train", "maccrobat_test", "bc5cdr_test", "ncbi_test"):
        assert (project / "corpus" / "gold" / f"{name}.spacy").stat().st_size > 0
    for name in ("aci_bench", "mts_dialog", "mtsamples"):
        assert (project / "corpus" / "unlabelled" / f"{name}.spacy").stat().st_size > 0
    # Same inputs, same numbers: the committed report is what this code produces.
    produced = json.loads((project / "reports" / "corpus_stats.json").read_text())
    assert produced == json.loads((ROOT / "reports" / "corpus_stats.json").read_text())
    # A second run skips every step whose deps and outputs are unchanged.
    again = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert again.stdout.count("Skipping 'corpus'") == 1
