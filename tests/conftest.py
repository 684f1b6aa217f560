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
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import spacy
import torch

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
# the tests that judge which ones need the default profile) of a 1-layer encoder (the default
# keeps 3: training took 191 s instead of 265 s, gold dev ents_f .19 instead of .33), scored on
# gold dev at the start and the end only, 2 LLM dev notes and 1 sample note, the first 20
# documents of each gold test set in `evaluate`. The `bench` workflow runs in the default profile.
SMALL = {
    "max_steps": 120,
    "encoder_layers": 1,
    "eval_frequency": 120,
    "eval_docs": 20,
    "llm_dev_docs": 2,
    "llm_sample": 1,
}
VARS = SMALL if SMALL_PROFILE else {}
WORKFLOWS = ("all",) if SMALL_PROFILE else ("all", "bench")


def weasel_run(
    project: Path, workflow: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    weasel = Path(sys.executable).parent / "weasel"
    cmd = [str(weasel), "run", workflow, ".", f"--vars.shared_data={data_dir}"]
    cmd += [f"--vars.{k}={v}" for k, v in VARS.items()]
    # CI's own 90-minute cap bounds the run (the default `all` took 65 minutes on a 2-core Zen 3).
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=5400, env=env)


def needs_workflow(item: pytest.Item) -> bool:
    return "workflow_project" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by fixture scope) and `-m`
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that need the workflow run last (stable order otherwise): the workflow itself runs
    in the background from the first test on (`_workflow_in_background`), so the tests that do not
    need it run meanwhile instead of after it."""
    items.sort(key=needs_workflow)


class BackgroundWorkflow:
    """The project copied to `project` and its workflows run there in a thread: the workflow is a
    subprocess (weasel) on its own copy, so nothing it does touches the tests running meanwhile."""

    def __init__(self, project: Path, data_dir: Path) -> None:
        self.project, self.data_dir = project, data_dir
        self.failure: str | None = None
        project.mkdir(parents=True)
        for name in PROJECT_FILES:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, project / name)
        # The committed reports `all` reads but does not write (README's speed and use tables:
        # `bench` and `evaluate-external` write them), as a clone has them.
        (project / "reports").mkdir()
        for name in COMMITTED_INPUTS:
            shutil.copyfile(ROOT / "reports" / name, project / "reports" / name)
        self.env = dict(os.environ)  # the workflow's, before the tests' own cap below
        self.thread = threading.Thread(target=self._run, name="workflow", daemon=True)
        self.thread.start()
        # Meanwhile the tests here compute on one core and leave the other to the workflow: two
        # spinning thread pools (PyTorch's, llama.cpp's) on 2 cores each wait on the other.
        self.threads = torch.get_num_threads()
        os.environ["OMP_NUM_THREADS"] = "1"  # what the tests' own subprocesses inherit
        torch.set_num_threads(1)

    def _run(self) -> None:
        try:
            for workflow in WORKFLOWS:
                result = weasel_run(self.project, workflow, self.data_dir, self.env)
                if result.returncode != 0:
                    tail = result.stdout[-4000:] + result.stderr[-4000:]
                    self.failure = f"`weasel run {workflow}` failed:\n{tail}"
                    return
        except Exception as error:  # a timeout, say: reported by the tests that need the project
            self.failure = f"the workflow did not finish: {error!r}"

    def result(self) -> Path:
        self.thread.join()
        self.restore()
        if self.failure:
            pytest.fail(self.failure, pytrace=False)
        return self.project

    def restore(self) -> None:
        """The tests after the workflow have every core again."""
        if "OMP_NUM_THREADS" in self.env:
            os.environ["OMP_NUM_THREADS"] = self.env["OMP_NUM_THREADS"]
        else:
            os.environ.pop("OMP_NUM_THREADS", None)
        torch.set_num_threads(self.threads)


@pytest.fixture(scope="session", autouse=True)
def _workflow_in_background(request, tmp_path_factory) -> Iterator[BackgroundWorkflow | None]:
    """Starts the workflow at the first test when some collected test needs it. On 2 cores the
    fast tier's pytest took 1,143 s this way against 1,275 s one after the other (reports/experiments.md)."""
    data = find_data_dir()
    if data is None or not any(needs_workflow(item) for item in request.session.items):
        yield None
        return
    background = BackgroundWorkflow(tmp_path_factory.mktemp("workflow") / "project", data)
    yield background
    background.restore()


@pytest.fixture(scope="session")
def workflow_project(_workflow_in_background, data_dir) -> Path:
    """A copy of the project after its workflows (`all`; `bench` too in the default profile)."""
    return _workflow_in_background.result()
