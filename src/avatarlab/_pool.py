"""A process pool that survives worker crashes, shared by every batch job.

Batch jobs (dataset preparation, evaluation) run one picklable function over
many items. A crash in native code or the OOM killer takes down a worker
*process*, which breaks a plain ``ProcessPoolExecutor`` for every item in
flight. Here the pool is rebuilt and the items that were in flight rerun one at
a time, so only the item that kills its worker again is reported as crashed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

R = TypeVar("R")

Crash = Callable[[tuple[Any, ...], BaseException], Any]
"""``on_crash(args, error)``: the result to report for an item whose worker process died."""


def default_workers() -> int:
    """Cores this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``workers``, or every usable core when it is None or 0; OptionError below 0."""
    from avatarlab.errors import OptionError

    count = workers or default_workers()
    if count < 1:
        raise OptionError(f"workers must be >= 1, got {count}")
    return count


def isolated_imap_unordered(
    fn: Callable[..., R],
    items: Iterable[tuple[Any, ...]],
    workers: int,
    on_crash: Crash | None = None,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """Yield ``fn(*args)`` for each ``args`` as tasks finish, in ``workers`` spawned processes.

    At most ``2 * workers`` items are in flight. ``fn`` and ``initializer`` must be
    picklable module-level functions; ``fn`` handles its own exceptions. Without
    ``on_crash`` a crashing item raises ``BrokenProcessPool``.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = deque(items)
    if not queue:
        return
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer)

    suspects: deque[tuple[Any, ...]] = deque()
    pending: dict[Future[R], tuple[Any, ...]] = {}
    solo: Future[R] | None = None  # the suspect running alone, if any
    pool = new_pool()
    try:
        while queue or suspects or pending:
            if suspects:
                if not pending:  # isolate: one suspect at a time, nothing else
                    args = suspects.popleft()
                    solo = pool.submit(fn, *args)
                    pending[solo] = args
            else:
                while queue and len(pending) < 2 * workers:
                    args = queue.popleft()
                    pending[pool.submit(fn, *args)] = args
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                args = pending.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool as err:
                    broken = True
                    if fut is not solo:
                        suspects.append(args)
                    elif on_crash is not None:
                        yield on_crash(args, err)
                    else:
                        raise
            if broken:
                suspects.extend(pending.values())
                pending.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
