"""Shared fixtures: the real data, from the local shared copy or the project's assets/."""

from __future__ import annotations

import os
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
