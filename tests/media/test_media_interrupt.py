"""A killed writer leaves no output; its temporary file is removed by the next run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from avatarlab._util import STALE_TMP_S, atomic_output
from avatarlab.media import probe, write_video

ROOT = Path(__file__).resolve().parents[2]

# Writes frames to out.mp4 until killed. SIGTERM raises KeyboardInterrupt, as the CLI's
# handler does, and the exit is 130 as for Ctrl-C.
WRITER = """
import signal, sys, time
import numpy as np
from avatarlab.media import VideoWriter

def interrupt(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, interrupt)
try:
    with VideoWriter(sys.argv[1], fps=25) as writer:
        for i in range(100_000):
            writer.write(np.full((64, 64, 3), i % 255, np.uint8))
            if i == 30:
                print("writing", flush=True)
            time.sleep(0.002)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _start_writer(out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AVATARLAB_PROGRESS": "0"},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".part-" in p.name)


def test_sigterm_removes_the_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = _start_writer(out)
    [tmp] = _temps(tmp_path)
    assert re.fullmatch(rf"\.out\.part-{proc.pid}-[a-z0-9_]{{8}}\.mp4", tmp.name)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 130
    assert list(tmp_path.iterdir()) == []  # neither a temporary file nor a partial output


def test_sigkill_leftover_is_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = _start_writer(out)
    proc.kill()
    proc.wait(10)
    [leftover] = _temps(tmp_path)
    assert f".part-{proc.pid}-" in leftover.name and not out.exists()
    # Files that are not ours to remove: a user's hidden file, another output's leftover,
    # and a temporary file of a live writer (this process).
    keep = [
        tmp_path / ".out.notes.mp4",
        tmp_path / f".other.part-{proc.pid}-abcd1234.mp4",
        tmp_path / f".out.part-{os.getpid()}-abcd1234.mp4",
        tmp_path / f".out.part-{proc.pid}-abcd1234.mkv",
    ]
    for path in keep:
        path.write_bytes(b"x")
    old = time.time() - STALE_TMP_S - 1
    for path in [leftover, *keep]:
        os.utime(path, (old, old))
    write_video(out, np.zeros((5, 32, 32, 3), np.uint8), fps=25)
    assert not leftover.exists()
    assert all(path.exists() for path in keep)
    assert probe(out).n_frames == 5


def test_fresh_leftover_of_a_dead_writer_is_kept_for_a_moment(tmp_path: Path) -> None:
    # Just written (another machine's writer on a shared folder has an unknown pid here).
    fresh = tmp_path / ".out.part-999999999-abcd1234.json"
    fresh.write_bytes(b"x")
    with atomic_output(tmp_path / "out.json") as tmp:
        tmp.write_text("{}")
    assert fresh.exists() and (tmp_path / "out.json").read_text() == "{}"
