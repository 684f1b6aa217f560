"""Independent jobs side by side in forked worker processes, results in the jobs' order.

Used where the parent has already loaded what every job reads (dev docs, teacher pipelines) and
loading it again per worker would cost more than the jobs: forked workers share it. Only where
fork is the platform's default start method (Linux); elsewhere (macOS, where forking is unsafe
with its system frameworks, and Windows) the jobs run one after another with the same results.
`gc.freeze()` keeps the garbage collector from writing to (and so copying) the shared objects in
every worker. A worker that dies (killed for memory, say) raises `BrokenProcessPool` instead of
leaving the run waiting. Written here because the standard library has the pieces, not the policy.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

J = TypeVar("J")
R = TypeVar("R")


def cores() -> int:
    """The cores this process may run on (all of them where affinity is not reported)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# The running forked_map's function and jobs: the workers inherit them when they fork, so only a
# job's index goes to a worker and `fn` may be a closure over data that cannot be pickled.
_RUNNING: dict[str, Any] = {}


def _run(i: int) -> Any:
    return _RUNNING["fn"](_RUNNING["jobs"][i])


def forked_map(fn: Callable[[J], R], jobs: Sequence[J], max_workers: int, **bar: Any) -> Iterator[R]:
    """`fn` over `jobs` on up to `max_workers` forked processes (no more than the cores), yielding
    results in the jobs' order; `bar`: tqdm's arguments for the progress bar."""
    workers = min(max_workers, cores(), len(jobs))
    if workers < 2 or multiprocessing.get_start_method() != "fork":
        yield from tqdm(map(fn, jobs), total=len(jobs), **bar)
        return
    if _RUNNING:
        raise RuntimeError("forked_map is already running in this process")
    _RUNNING.update(fn=fn, jobs=jobs)
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from tqdm(pool.map(_run, range(len(jobs))), total=len(jobs), **bar)
    finally:
        gc.unfreeze()
        _RUNNING.clear()
