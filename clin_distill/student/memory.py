"""A long labelling run's memory, kept flat: `clin_memory`, a pipe before the transformer.

Both of its jobs are settings in the pipeline's config, off unless set (the packaged model sets
them: clin_distill/packaging.py):

- `onednn_cache`: oneDNN caches a compiled kernel per input shape (1,024 by default), and notes of
  ever new lengths grew that cache, and the student's memory, by about 150 MB over 300 notes at
  the same speed (reports/experiments.md). Every layer shares each shape within one note, so a
  small cache keeps the reuse. It is an environment variable that oneDNN reads at its first
  kernel, so it is set when this pipe is built (during `spacy.load`, before any note); a user's
  own ONEDNN_PRIMITIVE_CACHE_CAPACITY wins.
- `ideep_cache`: PyTorch's oneDNN wrapper (ideep) keeps a second per-shape cache of its own
  (LRU_CACHE_CAPACITY, 1,024 by default) that the bf16 encoder filled: over 300 notes the
  packaged student peaked at 1,112 MB with it, 954 MB capped at 16 and 909 MB with oneDNN's cache
  at 8 as well, at the same words/s (measured by hand with the commands of the closing note of
  issue 21). Set the same way; a user's own LRU_CACHE_CAPACITY wins.
- `malloc_trim_every` / `malloc_trim_margin_mb`: glibc keeps the freed activation buffers of each
  note's new tensor sizes in its heap instead of returning them. After 2,000 varied notes the
  student's resident memory was 1,156 MB without trimming and 844 MB with it (reports/benchmark.md,
  long run). A trim is not free: the returned pages fault back in on the next notes, and trimming
  at every check cost 5-11% of the words/s (reports/experiments.md), so it trims only once
  resident memory has grown by the margin since the last trim. No maintained library does this for
  a spaCy pipeline; glibc's own switches (MALLOC_TRIM_THRESHOLD_ and the like) are read only at
  process start.

This file ships inside the packaged model (`spacy package --code`), so it imports only spaCy and
the standard library, and registers its factory only once when imported under two module names.
"""

import ctypes
import ctypes.util
import os
from collections.abc import Callable

from spacy.language import Language
from spacy.tokens import Doc

FACTORY = "clin_memory"
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
IDEEP_CACHE_ENV = "LRU_CACHE_CAPACITY"  # ideep, PyTorch's wrapper of oneDNN: its own per-shape cache


def cap_onednn_cache(capacity: int, env: str = ONEDNN_CACHE_ENV) -> None:
    """A per-shape kernel cache capped at `capacity`, unless the environment already says."""
    os.environ.setdefault(env, str(capacity))


def glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl, macOS, Windows: nothing to trim this way)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def resident_mb() -> float | None:
    """Resident memory now (Linux /proc/self/statm; None elsewhere). Not clin_distill.bench's
    reader: this file ships inside the model package without the project."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class MemoryLimits:
    """Docs pass unchanged; every `malloc_trim_every` notes (0: never) it looks at resident memory
    and trims the heap when that grew `malloc_trim_margin_mb` or more since the last trim (0: at
    every check). `onednn_cache` and `ideep_cache` (None: leave the library's default) are applied
    when the pipe is built."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        onednn_cache: int | None,
        malloc_trim_every: int,
        malloc_trim_margin_mb: int,
        ideep_cache: int | None = None,
    ) -> None:
        for key, value in (("onednn_cache", onednn_cache), ("ideep_cache", ideep_cache)):
            if value is not None and value < 0:
                raise ValueError(f"{name}: {key} must be >= 0 or null (leave it), got {value}")
        if malloc_trim_every < 0:
            raise ValueError(f"{name}: malloc_trim_every must be >= 0 (0: off), got {malloc_trim_every}")
        if malloc_trim_margin_mb < 0:
            raise ValueError(f"{name}: malloc_trim_margin_mb must be >= 0, got {malloc_trim_margin_mb}")
        self.name = name
        self.onednn_cache, self.ideep_cache = onednn_cache, ideep_cache
        self.malloc_trim_every = malloc_trim_every
        self.malloc_trim_margin_mb = malloc_trim_margin_mb
        if onednn_cache is not None:
            cap_onednn_cache(onednn_cache)
        if ideep_cache is not None:
            cap_onednn_cache(ideep_cache, IDEEP_CACHE_ENV)
        self._trim = glibc_malloc_trim() if malloc_trim_every else None
        self._docs = 0
        self._trimmed_at_mb: float | None = None  # resident memory right after the last trim

    def __call__(self, doc: Doc) -> Doc:
        self._docs += 1
        if self._trim is not None and self._docs % self.malloc_trim_every == 0:
            resident = resident_mb()
            last = self._trimmed_at_mb
            if resident is None or last is None or resident - last >= self.malloc_trim_margin_mb:
                self._trim(0)  # before this note's forward pass: the heap the last ones freed goes back
                self._trimmed_at_mb = resident_mb()
        return doc


if not Language.has_factory(FACTORY):
    Language.factory(
        FACTORY,
        default_config={
            "onednn_cache": None,
            "ideep_cache": None,
            "malloc_trim_every": 0,
            "malloc_trim_margin_mb": 64,
        },
    )(MemoryLimits)
