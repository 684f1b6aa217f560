"""srsly's msgpack encoders and decoders, looked up without rescanning the installed entry points.

spaCy writes and reads every span group of a Doc through srsly's msgpack, and srsly asks
catalogue for its msgpack encoders (or decoders) at every call. catalogue's `Registry.get_all`
filters all installed entry points each time, about 0.5 ms per call on the project's 2 cores. A
DocBin of teacher-labelled notes holds a span group per teacher per note, so `distil-corpus` made
80,000 such calls: it took 79 s, and 38 s with the lookup cached (same bytes out; the cores busy
with other work in both runs). The entry points are the one part that cannot change (catalogue
reads them once, when it is imported), so they are loaded once here; the functions registered in
the process are still read at every call, as catalogue reads them, so one registered or replaced
later is used (31 us per call instead of 480). The modules that read or write teacher DocBins call
`cache_msgpack_registries` when they are imported. Written here because neither srsly (2.5.6) nor
catalogue (2.0.10) caches the lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import catalogue
import srsly.msgpack

_ORIGINAL = "clin_uncached_get_all"


def _cached(registry: catalogue.Registry) -> Callable[[], dict[str, Any]]:
    from_entry_points = dict(registry.get_entry_points()) if registry.entry_points else {}
    namespace = tuple(registry.namespace)
    depth = len(namespace) + 1

    def get_all() -> dict[str, Any]:
        """`Registry.get_all`: entry points first, then the registered functions, which win."""
        result = dict(from_entry_points)
        for keys, value in catalogue.REGISTRY.copy().items():
            if len(keys) == depth and keys[:-1] == namespace:
                result[keys[-1]] = value
        return result

    setattr(get_all, _ORIGINAL, registry.get_all)
    return get_all


def cache_msgpack_registries() -> None:
    """Cache srsly's two msgpack registries' entry points (once per process; later calls do nothing)."""
    for registry in (srsly.msgpack.msgpack_encoders, srsly.msgpack.msgpack_decoders):
        if not hasattr(registry.get_all, _ORIGINAL):
            registry.get_all = _cached(registry)
