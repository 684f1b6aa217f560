"""Deterministic document-level splits for corpora that ship without one (MACCROBAT2020)."""

from __future__ import annotations

import hashlib


def hash_split(doc_ids: list[str], sizes: dict[str, int], salt: str = "clin-distill") -> dict[str, list[str]]:
    """Order ids by SHA-256 of `salt:id` and cut consecutive blocks of the given sizes.

    The result depends only on the ids and the salt: identical on every machine, Python
    version and file-system listing order.
    """
    if sum(sizes.values()) != len(doc_ids):
        raise ValueError(f"split sizes {sizes} do not add up to {len(doc_ids)} documents")
    ordered = sorted(doc_ids, key=lambda i: hashlib.sha256(f"{salt}:{i}".encode()).hexdigest())
    out, pos = {}, 0
    for name, size in sizes.items():
        out[name] = sorted(ordered[pos : pos + size])
        pos += size
    return out
