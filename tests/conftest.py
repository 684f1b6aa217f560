"""Shared fixtures: the real data, from the local shared copy or the project's assets/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

ROOT = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path | None:
    for candidate in (os.environ.get("CLIN_SHARED_DATA"), ROOT.parent / "shared" / "data", ROOT / "assets"):
        if candidate and (Path(candidate) / "maccrobat2020").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = find_data_dir()
    if found is None:
        pytest.fail("no data: set CLIN_SHARED_DATA, place ../shared/data, or run `weasel run assets`")
    return found


@pytest.fixture(scope="session")
def nlp():
    return spacy.blank("en")


PROJECT_FILES = ("project.yml", "scripts", "configs", "clin_distill")


# CLIN_TEST_PROFILE=small trains each student for a few steps only: the workflow is checked end
# to end in minutes, and the tests that judge the trained model's predictions are skipped.
# The default profile (CI) runs `weasel run all` exactly as users do.
SMALL_PROFILE = os.environ.get("CLIN_TEST_PROFILE", "default") == "small"
SMALL_VARS = ["--vars.max_steps=20", "--vars.eval_frequency=10"]


def weasel_run_all(project: Path, data_dir: Path) -> subprocess.CompletedProcess:
    weasel = Path(sys.executable).parent / "weasel"
    cmd = [
        str(weasel),
        "run",
        "all",
        ".",
        f"--vars.shared_data={data_dir}",
        *(SMALL_VARS if SMALL_PROFILE else []),
    ]
    # CI's own 90-minute cap bounds the run: `weasel run all` took 65 minutes on a 2-core Zen 3
    # without native bf16 (27 on an AVX512-BF16 one), past the 60 minutes once allowed here.
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=5400)


@pytest.fixture(scope="session")
def workflow_project(data_dir, tmp_path_factory) -> Path:
    """A copy of the project after `weasel run all`, run once per test session."""
    project = tmp_path_factory.mktemp("workflow") / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, project / name)
    result = weasel_run_all(project, data_dir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project
