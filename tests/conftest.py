"""Shared fixtures: the real data, from the local shared copy or the project's assets/, and the
project's own workflow run once per test session on a copy of the project.

Two profiles (CLIN_TEST_PROFILE): `small` (the default, and `make test`: short training, a few LLM
notes, a small benchmark sample; every step still runs on the real data) and `default` (`make
test-full`: `weasel run all` and `weasel run bench` exactly as users run them, plus the tests marked
`full`, which judge the trained default model).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

import clin_distill.student.windows  # noqa: F401  (the trained students' encoder, for spacy.load)

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


PROJECT_FILES = ("project.yml", "scripts", "configs", "clin_distill", "README.md")
COMMITTED_INPUTS = ("benchmark.json", "benchmark_no_bf16.json", "extract.json", "external.json")

PROFILE = os.environ.get("CLIN_TEST_PROFILE", "small")
SMALL_PROFILE = PROFILE == "small"
# Real data at every step, less of the slow work: 120 training steps (the students find a few
# entities; at 80 the distilled one found none once its corpus lost 1% of its MEDICATION labels;
# the tests that judge which ones need the default profile), scored on gold dev at the start and
# the end only, 2 LLM dev notes and 1 sample note, the first 20 documents of each gold test set in
# `evaluate`. The `bench` workflow runs in the default profile.
SMALL = {
    "max_steps": 120,
    "eval_frequency": 120,
    "eval_docs": 20,
    "llm_dev_docs": 2,
    "llm_sample": 1,
}
VARS = SMALL if SMALL_PROFILE else {}
WORKFLOWS = ("all",) if SMALL_PROFILE else ("all", "bench")


def weasel_run(project: Path, workflow: str, data_dir: Path) -> subprocess.CompletedProcess:
    weasel = Path(sys.executable).parent / "weasel"
    cmd = [str(weasel), "run", workflow, ".", f"--vars.shared_data={data_dir}"]
    cmd += [f"--vars.{k}={v}" for k, v in VARS.items()]
    # CI's own 90-minute cap bounds the run (the default `all` took 65 minutes on a 2-core Zen 3).
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=5400)


@pytest.fixture(scope="session")
def workflow_project(data_dir, tmp_path_factory) -> Path:
    """A copy of the project after its workflows (`all`; `bench` too in the default profile)."""
    project = tmp_path_factory.mktemp("workflow") / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, project / name)
    # The committed reports `all` reads but does not write (README's speed and use tables: `bench`
    # and `evaluate-external` write them), as a clone has them.
    (project / "reports").mkdir()
    for name in COMMITTED_INPUTS:
        shutil.copyfile(ROOT / "reports" / name, project / "reports" / name)
    for workflow in WORKFLOWS:
        result = weasel_run(project, workflow, data_dir)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project
