"""srsly's msgpack encoders and decoders, looked up once instead of at every call.

spaCy writes and reads every span group of a Doc through srsly's msgpack, and srsly asks
catalogue for its msgpack encoders (or decoders) at every call: `Registry.get_all` filters all
installed entry points and walks the whole function registry each time, about 0.5 ms per call on
the project's 2 cores. A DocBin of teacher-labelled notes holds a span group per teacher per note,
so `distil-corpus` made 80,000 such calls: it took 79 s, and 38 s with this cache (same bytes
out). The modules that read or write teacher DocBins call `cache_msgpack_registries` when they are
imported. Written here because neither srsly (2.5.6) nor catalogue (2.0.10) caches the lookup; the
answer is the same until a function is registered, and catalogue reads the entry points once, at
import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import catalogue
import srsly.msgpack

_ORIGINAL = "clin_uncached_get_all"


def _cached(get_all: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    key: list[int | None] = [None]
    value: dict[str, Any] = {}

    def cached_get_all() -> dict[str, Any]:
        size = len(catalogue.REGISTRY)  # grows with every function registered, in any namespace
        if key[0] != size:
            value.clear()
            value.update(get_all())
            key[0] = size
        return dict(value)

    setattr(cached_get_all, _ORIGINAL, get_all)
    return cached_get_all


def cache_msgpack_registries() -> None:
    """Cache srsly's two msgpack registries' `get_all` (once per process; later calls do nothing)."""
    for registry in (srsly.msgpack.msgpack_encoders, srsly.msgpack.msgpack_decoders):
        if not hasattr(registry.get_all, _ORIGINAL):
            registry.get_all = _cached(registry.get_all)
