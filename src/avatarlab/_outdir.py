"""Output folders of batch jobs: one run at a time, and no leftovers of a killed run.

A batch job (``prepare``, ``eval``) that writes into a folder holds
:func:`output_lock` on it for the whole run, so a second run into the same
folder is refused at once instead of racing the first one's files. The lock is
an ``fcntl.flock`` on a hidden file: the kernel drops it when its holder dies,
so the lock of a killed run is taken over by the next run without any clean-up.
Under the lock, :func:`remove_owned_temps` deletes the temporary files that
:func:`avatarlab._util.atomic_output` leaves behind when a run is killed while
writing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from avatarlab import _util
from avatarlab.errors import OptionError

LOCK_NAME = ".avatarlab.lock"


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], job: str) -> Iterator[Path]:
    """Hold an exclusive lock on the existing ``folder`` while the block runs.

    The lock file records ``pid host job`` of the holder while it runs and is
    emptied when the block ends, so finished and resumed runs leave the same file.

    Raises:
        OptionError: another live process holds the lock (one line naming the
            folder and that process).
    """
    import fcntl

    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
            who = f" (pid {holder[0]} on {holder[1]}, {holder[2]})" if len(holder) == 3 else ""
            raise OptionError(
                f"{folder} is in use by another avatarlab run{who}: wait for it to end "
                "or write to another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {job}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def remove_owned_temps(outputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Delete the temporaries that ``atomic_output`` left for each of ``outputs``.

    Call this only under :func:`output_lock`, when no other writer can own such a
    file: a run killed while writing leaves them, whatever their age. Returns the
    paths removed.
    """
    removed: list[Path] = []
    for output in outputs:
        final = Path(output)
        removed += _util.remove_stale_temps(final, final.suffix, owned=True)
    return removed
