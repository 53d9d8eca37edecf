"""Executors: run one picklable function over many items, locally or on a Ray cluster.

An executor is chosen by name (:func:`get_executor`) and offers one method,
``imap_unordered(fn, items)``, yielding results as tasks finish. Every executor
runs the *same* function on the same arguments, so outputs do not depend on
where a task ran; only the order of completion differs, and callers sort.

* ``"local"``: a ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn``
  start method (safe with threads in the parent: PyAV, MediaPipe, Ray), one
  worker per core by default; ``workers=1`` runs in this process. Scripts that
  start a pool need the usual ``if __name__ == "__main__":`` guard: without it
  the executor refuses with an ``OptionError`` naming the line.
* ``"ray"``: Ray tasks (``num_cpus=1`` each). ``address`` joins an existing
  cluster (``"auto"`` or ``"ray://head:10001"``); without it a local Ray
  instance with ``workers`` CPUs is started and shut down afterwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from avatarlab._pool import Crash, check_main_guard, isolated_imap_unordered, resolve_workers
from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.registry import Registry

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS: Registry[Callable[..., Executor]] = Registry(
    "executor", entry_points="avatarlab.executors"
)
"""Executor name -> a factory ``(workers, address) -> Executor``."""


class Executor(Protocol):
    """Runs ``fn(*args)`` for each ``args`` tuple; yields results as they complete.

    ``fn`` must be a picklable module-level function that handles its own errors.
    When a worker *process* dies on an item (a crash in native code, the OOM
    killer), the executor reports ``on_crash(args, error)`` for that item and goes
    on with the others; without ``on_crash`` the error propagates.
    """

    name: str
    workers: int

    def imap_unordered(
        self,
        fn: Callable[..., R],
        items: Iterable[tuple[Any, ...]],
        on_crash: Crash | None = None,
    ) -> Iterator[R]: ...


class LocalExecutor:
    """A process pool on this machine (``spawn`` start method), where a crash in
    native code costs one item, not the run; one worker runs in this process.

    Raises:
        OptionError: ``workers`` below 1, or a pool started from unguarded
            top-level code of a script (see :func:`avatarlab._pool.check_main_guard`).
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = resolve_workers(workers)
        if self.workers > 1:
            check_main_guard(self.workers)

    def imap_unordered(
        self,
        fn: Callable[..., R],
        items: Iterable[tuple[Any, ...]],
        on_crash: Crash | None = None,
    ) -> Iterator[R]:
        """Run in ``workers`` processes (see :func:`avatarlab._pool.isolated_imap_unordered`),
        or one after another in this process for one worker."""
        if self.workers == 1:
            yield from (fn(*args) for args in items)
            return
        yield from isolated_imap_unordered(fn, items, self.workers, on_crash)


class RayExecutor:
    """Ray tasks, on a local Ray instance or an existing cluster (``address``)."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.address = address
        self.workers = resolve_workers(workers)

    def imap_unordered(
        self,
        fn: Callable[..., R],
        items: Iterable[tuple[Any, ...]],
        on_crash: Crash | None = None,
    ) -> Iterator[R]:
        """Submit one Ray task per item (bounded window) and yield results as they finish.

        Ray retries a task once when its worker dies; a second death is reported
        through ``on_crash``.
        """
        try:
            import ray
            from ray.exceptions import RayError, RayTaskError
        except ImportError as err:  # pragma: no cover - ray is in the datasets extra
            raise AvatarLabError(
                "the ray executor needs Ray: pip install 'avatarlab[datasets]'"
            ) from err
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.workers
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError) as err:
                raise AvatarLabError(
                    f"could not start or join Ray (address={self.address!r}): {err}. Check "
                    "that `ray start` runs at that address and that this machine has the "
                    "cluster's token (RAY_AUTH_MODE=token and ~/.ray/auth_token)"
                ) from err
            started = True
        try:
            remote = ray.remote(num_cpus=1, max_retries=1)(fn)
            if self.address:  # a cluster: its CPUs, not this machine's, are the workers
                self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            window = 2 * self.workers
            queue = deque(items)
            pending: dict[Any, tuple[Any, ...]] = {}
            while queue or pending:
                while queue and len(pending) < window:
                    args = queue.popleft()
                    pending[remote.remote(*args)] = args
                done, _ = ray.wait(list(pending), num_returns=1)
                args = pending.pop(done[0])
                try:
                    yield ray.get(done[0])
                except RayTaskError:
                    raise  # an exception inside fn: a bug, not a crash
                except RayError as err:
                    if on_crash is None:
                        raise
                    yield on_crash(args, err)
        finally:
            if started:
                ray.shutdown()


def _local(workers: int | None, address: str | None) -> Executor:
    if address:
        raise OptionError("an address only applies to the ray executor")
    return LocalExecutor(workers)


def _ray(workers: int | None, address: str | None) -> Executor:
    return RayExecutor(workers, address)


EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)


def get_executor(name: str, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor called ``name`` (``"local"``, ``"ray"`` or one another package registered).

    Raises:
        OptionError: unknown name, or ``address`` given for the local executor.
    """
    return EXECUTORS.get(name)(workers, address)
