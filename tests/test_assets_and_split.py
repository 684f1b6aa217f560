"""Assets come verified from the local copy; the MACCROBAT split is fixed and documented."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from clin_distill.assets import AssetError, copy_verified, read_sha256sums
from clin_distill.corpora.brat import brat_doc_ids
from clin_distill.corpora.split import hash_split
from conftest import ROOT

SIZES = {"train": 120, "dev": 30, "test": 50}


def test_split_is_deterministic_and_matches_committed_report(data_dir):
    ids = brat_doc_ids(data_dir / "maccrobat2020")
    split = hash_split(ids, SIZES)
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    assert hash_split(shuffled, SIZES) == split
    assert {k: len(v) for k, v in split.items()} == SIZES
    assert set().union(*split.values()) == set(ids)
    assert split == json.loads((ROOT / "reports" / "maccrobat_split.json").read_text())
    with pytest.raises(ValueError, match="do not add up"):
        hash_split(ids, {"train": 1})


def test_copy_verified_refuses_a_tampered_file(data_dir, tmp_path):
    sums = read_sha256sums(data_dir / "SHA256SUMS")
    src = tmp_path / "shared" / "bc5cdr" / "CDR_TestSet.PubTator.txt"
    src.parent.mkdir(parents=True)
    shutil.copyfile(data_dir / "bc5cdr" / "CDR_TestSet.PubTator.txt", src)
    dest = tmp_path / "assets" / "bc5cdr" / "CDR_TestSet.PubTator.txt"
    assert copy_verified(src, dest, "bc5cdr/CDR_TestSet.PubTator.txt", sums) == 1
    assert dest.read_bytes() == src.read_bytes()
    with src.open("a") as f:
        f.write("x")
    with pytest.raises(AssetError, match="SHA-256 differs"):
        copy_verified(src, dest, "bc5cdr/CDR_TestSet.PubTator.txt", sums)
    with pytest.raises(AssetError, match="not listed"):
        copy_verified(src, dest, "bc5cdr/renamed.txt", sums)
