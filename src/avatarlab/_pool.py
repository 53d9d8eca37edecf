"""A process pool that survives worker crashes, shared by every batch job.

Batch jobs (dataset preparation, evaluation) run one picklable function over
many items. A crash in native code or the OOM killer takes down a worker
*process*, which breaks a plain ``ProcessPoolExecutor`` for every item in
flight. Here the pool is rebuilt and the items that were in flight rerun one at
a time, so only the item that kills its worker again is reported as crashed.

Workers die with the process that started them: each asks the kernel for SIGKILL
when its parent goes (Linux ``PR_SET_PDEATHSIG``) and also runs a watchdog
thread that polls ``os.getppid()`` (other systems, or a parent gone before the
request took effect). A killed job thus never leaves workers writing into its
output folder. The ``spawn`` start method re-imports the user's ``__main__``
module in every worker; :func:`check_main_guard` refuses to start a pool from a
script whose call is not under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

Crash = Callable[[tuple[Any, ...], BaseException], Any]
"""``on_crash(args, error)``: the result to report for an item whose worker process died."""

#: Seconds between two parent checks of a worker's watchdog thread.
WATCHDOG_SECONDS = 0.25
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
    check_main_guard(workers)
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), _qualified_name(initializer)),
        )

    suspects: deque[tuple[Any, ...]] = deque()
    pending: dict[Future[R], tuple[Any, ...]] = {}
    solo: Future[R] | None = None  # the suspect running alone, if any
    pool = new_pool()
    finished = False
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
        finished = True
    finally:
        if not finished:  # interrupted, or the caller stopped early: no one wants results
            _stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: Any) -> None:
    """Terminate the pool's worker processes now, instead of letting ``shutdown`` wait
    for the items they run (Ctrl-C, SIGTERM turned into KeyboardInterrupt, an error)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


def _qualified_name(fn: Callable[[], None] | None) -> str:
    """``"module:name"`` of a module-level function ("" for None)."""
    return "" if fn is None else f"{fn.__module__}:{fn.__qualname__}"


def _init_worker(parent: int, initializer: str) -> None:
    """Pool worker start-up: die with ``parent``, then run the caller's ``initializer``.

    The initializer travels by name, so the worker imports its module (often heavy:
    seconds on a busy machine) only after the parent-death request is in place.
    """
    die_with_parent(parent)
    if initializer:
        import importlib

        module, name = initializer.split(":")
        getattr(importlib.import_module(module), name)()


def die_with_parent(parent: int) -> None:
    """Make this process exit (SIGKILL) as soon as its parent ``parent`` is gone.

    The kernel's parent-death signal acts at once but follows the parent *thread*
    that started this process and exists on Linux only; the watchdog thread
    (every :data:`WATCHDOG_SECONDS`) covers the rest.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # gone before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="avatarlab-parent-watchdog", daemon=True
    ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def check_main_guard(workers: int) -> None:
    """Refuse to start worker processes from unguarded top-level code of a script.

    ``spawn`` (and ``forkserver``) workers import the script that is ``__main__``
    again; a call at its top level outside ``if __name__ == "__main__":`` would
    run again in every worker, which cannot start processes of its own there, and
    the pool would break. Interactive sessions, ``python -c`` and package
    ``__main__`` modules are not re-imported and pass.

    Raises:
        OptionError: the call comes from such unguarded code (one line naming the
            script and line).
    """
    from avatarlab.errors import OptionError

    where = _unguarded_call_site()
    if where is not None:
        path, line = where
        raise OptionError(
            f"{path}:{line} starts {workers} worker processes, which import this script "
            'again: put the call under `if __name__ == "__main__":` (or pass workers=1)'
        )


def _unguarded_call_site() -> tuple[str, int] | None:
    """``(script, line)`` of the top-level statement of ``__main__`` that led here, when
    spawned workers would re-run it; None otherwise."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    path = getattr(main, "__file__", None)
    if main is None or path is None or name == "__main__" or name.endswith(".__main__"):
        return None
    frame = sys._getframe(1)
    while frame is not None and not (
        frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>"
    ):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and _is_main_test(node.test)
            and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)
        ):
            return None
    return path, line


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either side)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main
