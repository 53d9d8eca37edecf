"""Small helpers shared by every module: atomic outputs and progress bars."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from avatarlab.errors import MediaError, OptionError

T = TypeVar("T")

# Progress bars are shown only when a human watches and the work is long enough.
_PROGRESS_ENV = "AVATARLAB_PROGRESS"

# Temporary outputs are ``.<stem>.part-<pid>-<8 random chars><suffix>`` beside the output:
# the writer's pid tells a leftover of a killed run (SIGKILL, power loss) from a live one.
_TMP_MARK = ".part-"
_TMP_ANY = re.compile(r"^\..+\.part-\d+-[a-z0-9_]{8}")
#: A leftover whose writer is gone is removed once untouched this long (seconds).
STALE_TMP_S = 2.0
#: A leftover untouched this long is removed even if its pid now names a live process.
ORPHAN_TMP_S = 24 * 3600.0
# Per folder, the leftover candidates found by its one scan in this process.
_candidates: dict[str, list[str]] = {}


def _process_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``); elsewhere read once,
    under a lock, by setting and restoring it (``os.umask`` has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    global _umask
    with _umask_lock:
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
        return _umask


_umask: int | None = None
_umask_lock = threading.Lock()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and move it into place on success.

    On any exception (KeyboardInterrupt included: the CLI turns SIGTERM into one) the
    temporary file is removed, so a failed job never leaves a half-written output
    behind. A job killed outright (SIGKILL) cannot clean up: the next
    ``atomic_output`` for the same output removes such leftovers (see
    :func:`remove_stale_temps`). ``suffix`` defaults to ``path``'s own suffix, so
    writers that pick a format by extension (PyAV, OpenCV) keep working.
    """
    final = Path(path)
    if final.is_dir():
        raise MediaError(f"{final} is a folder: give a file name inside it")
    suffix = suffix if suffix is not None else final.suffix
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final, suffix)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final.stem}{_TMP_MARK}{os.getpid()}-", suffix=suffix, dir=final.parent
        )
    except OSError as exc:
        raise MediaError(
            f"cannot write {final}: {exc.strerror or exc}; check that its folder can be "
            "created and is writable"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes files 0600; give outputs the usual umask mode
            os.chmod(tmp, 0o666 & ~_process_umask())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(final: Path, suffix: str, *, owned: bool = False) -> list[Path]:
    """Delete leftover temporary files of :func:`atomic_output` for ``final``; returns them.

    Only files of our exact pattern for this output (``.<stem>.part-<pid>-<random>
    <suffix>``) are candidates, and one is removed only when its writer process no
    longer exists and it was not modified for ``STALE_TMP_S``, or it is older than
    ``ORPHAN_TMP_S`` (its pid was reused). A folder is listed once per process.
    ``owned``: the caller holds the folder's run lock (``avatarlab._outdir``), so no
    other writer can exist: the folder is listed afresh and every candidate not
    written by this process goes, whatever its age.
    """
    folder = str(final.parent)
    if owned or folder not in _candidates:
        try:
            with os.scandir(folder) as entries:
                _candidates[folder] = [e.name for e in entries if _TMP_ANY.match(e.name)]
        except OSError:
            _candidates[folder] = []
    ours = re.compile(
        rf"^\.{re.escape(final.stem)}{re.escape(_TMP_MARK)}(\d+)-[a-z0-9_]{{8}}{re.escape(suffix)}$"
    )
    removed: list[Path] = []
    for name in list(_candidates[folder]):
        found = ours.match(name)
        if found is None:
            continue
        tmp = final.parent / name
        try:
            age = time.time() - tmp.stat().st_mtime
        except OSError:  # already gone
            _candidates[folder].remove(name)
            continue
        pid = int(found.group(1))
        stale = age > STALE_TMP_S and not _pid_alive(pid)
        if age > ORPHAN_TMP_S or stale or (owned and pid != os.getpid()):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
            _candidates[folder].remove(name)
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (POSIX signal 0; Windows: assume so)."""
    if pid == os.getpid() or os.name == "nt":  # os.kill on Windows would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but belongs to another user
        return True
    return True


def progress_enabled() -> bool:
    """Whether to draw progress bars: on a terminal, unless AVATARLAB_PROGRESS=0."""
    env = os.environ.get(_PROGRESS_ENV)
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def track_progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a Rich progress bar (rate and ETA) when enabled."""
    if not progress_enabled():
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _RateColumn(ProgressColumn):
        def render(self, task):  # type: ignore[no-untyped-def]
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


_native_silenced = False


def fd2_to_devnull() -> int:
    """Point file descriptor 2 at /dev/null (after flushing ``sys.stderr``); returns a
    duplicate of what it was, to restore with ``os.dup2(saved, 2)``."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return saved


def native_stderr_silenced() -> bool:
    """Whether :func:`silence_native_stderr` already pointed fd 2 at /dev/null."""
    return _native_silenced


def silence_native_stderr() -> None:
    """Hide log lines that native libraries (MediaPipe, TFLite, absl) write to fd 2.

    Python's ``sys.stderr`` (errors, warnings, progress bars) moves to a duplicate
    of the original stream, so users still see everything avatarlab says. Used by
    the CLI only; set ``AVATARLAB_NATIVE_LOGS=1`` to keep the native lines.
    """
    if os.environ.get("AVATARLAB_NATIVE_LOGS") == "1":
        return
    try:
        saved = fd2_to_devnull()
    except (OSError, ValueError):
        return
    global _native_silenced
    _native_silenced = True
    sys.stderr = os.fdopen(saved, "w", buffering=1, errors="backslashreplace")


def check_crf(crf: int) -> int:
    """``crf`` if it is an H.264 quality level (0..51), else :class:`OptionError`."""
    if not 0 <= crf <= 51:
        raise OptionError(f"crf must be in 0..51 (0 lossless, 18 visually lossless), got {crf}")
    return crf


def make_output_folder(path: str | os.PathLike[str], *, create: bool = True) -> Path:
    """Check that ``path`` can be an output folder (``-o``) and create it (with parents).

    Called before any work so that a wrong ``-o`` (an existing file, a path below a
    file, an unwritable place) fails at once with an :class:`OptionError` naming it.
    ``create=False`` only checks, creating nothing.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise OptionError(
            f"output folder {str(out)!r} is a file: give a folder (-o on the command line)"
        )
    probe = out
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise OptionError(
            f"cannot create output folder {str(out)!r}: {str(probe)!r} is not a folder; "
            "give another output folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OptionError(
            f"cannot write output folder {str(out)!r}: {str(probe)!r} is not writable; "
            "give another output folder"
        )
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OptionError(
                f"cannot create output folder {str(out)!r} ({err.strerror or err}): "
                "give another output folder"
            ) from err
    return out
