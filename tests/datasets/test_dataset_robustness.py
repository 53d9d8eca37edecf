"""Preparation that survives kills, concurrent runs and scripts without a main guard.

Issue 17 items 1, 5 and 8 and issue 11 item 7: workers die with their parent, a run
locks its output folder, a clip counts as done only when its files match what its
result lists, leftovers of a killed run are removed, the summary says when nothing
was produced, option bounds, and ``prepare`` from an unguarded script. The kill tests
of whole runs are in ``tests/reliability/test_faults.py``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from avatarlab._outdir import LOCK_NAME, output_lock, remove_owned_temps
from avatarlab.datasets import PrepareOptions, prepare
from avatarlab.datasets.executors import LocalExecutor
from avatarlab.datasets.pipeline import (
    DONE_MARKER,
    RESULT_NAME,
    load_result,
    save_npz,
    verify_outputs,
)
from avatarlab.errors import MediaError, OptionError

OPTIONS = PrepareOptions(size=32, min_face=16, min_duration=0.5)
TIMINGS = ("seconds", "cpu_seconds", "pid")  # clip.json fields that are timings by nature


def run_python(code: str, *args: str, cwd: Path | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, *args] if not code else [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "AVATARLAB_PROGRESS": "0"},
    )


def tree(root: Path) -> dict[str, object]:
    """Every path below ``root`` with its bytes (clip.json without its timings)."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            out[rel + "/"] = None
        elif path.name == RESULT_NAME:
            data = json.loads(path.read_text())
            out[rel] = {k: v for k, v in data.items() if k not in TIMINGS}
        elif path.name != "run-log.jsonl":
            out[rel] = path.read_bytes()
    return out


# -- options (issue 17.8) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", 100000, "size must be in 16..2048 pixels, got 100000"),
        ("size", 8, "size must be in 16..2048 pixels, got 8"),
        ("fps", 1000.0, "fps must be in (0, 120], got 1000"),
        ("fps", math.nan, "fps must be in (0, 120], got nan"),
        ("fps", 0.0, "fps must be in (0, 120], got 0"),
        ("sample_rate", 10**7, "sample_rate must be in 1..192000 Hz, got 10000000"),
    ],
)
def test_out_of_range_sizes_and_rates_are_one_line_errors(field, value, message) -> None:
    with pytest.raises(OptionError) as err:
        PrepareOptions(**{field: value})
    assert str(err.value) == message


def test_the_bounds_themselves_are_accepted() -> None:
    options = PrepareOptions(size=2048, fps=120.0, sample_rate=192000)
    assert (options.size, options.fps, options.sample_rate) == (2048, 120.0, 192000)


# -- the main guard and in-process runs (issue 11.7) -------------------------------------------


def _pid(_: int) -> int:
    return os.getpid()


def test_one_worker_runs_in_this_process() -> None:
    assert list(LocalExecutor(workers=1).imap_unordered(_pid, [(0,), (1,)])) == [os.getpid()] * 2
    assert set(LocalExecutor(workers=2).imap_unordered(_pid, [(0,), (1,)])) - {os.getpid()}


GUARD_CASES = {
    "top level": ("LocalExecutor(workers=2)\n", 3),
    "through a function": ("def main():\n    LocalExecutor(workers=2)\n\nmain()\n", 6),
    "guarded": ('if __name__ == "__main__":\n    LocalExecutor(workers=2)\n', None),
    "guarded, reversed": ('if "__main__" == __name__:\n    main = LocalExecutor(2)\n', None),
    "one worker": ("LocalExecutor(workers=1)\n", None),
}


@pytest.mark.parametrize("case", GUARD_CASES)
def test_a_pool_from_unguarded_script_code_is_refused_naming_the_line(
    case: str, tmp_path: Path
) -> None:
    body, line = GUARD_CASES[case]
    script = tmp_path / "job.py"
    script.write_text("from avatarlab.datasets.executors import LocalExecutor\n\n" + body)
    result = run_python("", str(script))
    if line is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"avatarlab.errors.OptionError: {script}:{line} starts 2 worker processes, which "
        'import this script again: put the call under `if __name__ == "__main__":` '
        "(or pass workers=1)"
    )


def test_python_c_and_package_main_are_not_checked() -> None:
    code = "from avatarlab.datasets.executors import LocalExecutor; LocalExecutor(workers=2)"
    assert run_python(code).returncode == 0


# -- workers die with their parent (issue 17.1) ---------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _orphan_check(child_code: str) -> tuple[int, float]:
    """Start a parent that starts a child running ``child_code``, SIGKILL the parent,
    and return the child's pid and the seconds it outlived the parent (inf: > 3 s)."""
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child_code!r}], stdout=subprocess.PIPE)
        print(child.stdout.readline().decode().strip(), flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    killed = time.perf_counter()
    while _alive(child) and time.perf_counter() - killed < 3:
        time.sleep(0.01)
    if _alive(child):
        os.kill(child, signal.SIGKILL)
        return child, math.inf
    return child, time.perf_counter() - killed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc")
def test_a_worker_dies_with_its_parent_at_once() -> None:
    code = (
        "import os, time; from avatarlab._pool import die_with_parent; "
        "die_with_parent(os.getppid()); print(os.getpid(), flush=True); time.sleep(60)"
    )
    _, outlived = _orphan_check(code)
    assert outlived < 0.5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_watchdog_alone_kills_an_orphaned_worker() -> None:
    code = (
        "import os, threading, time; from avatarlab._pool import _watch_parent; "
        "threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start(); "
        "print(os.getpid(), flush=True); time.sleep(60)"
    )
    _, outlived = _orphan_check(code)
    assert outlived < 1.0  # WATCHDOG_SECONDS = 0.25 plus process exit


def test_an_interrupted_pool_stops_its_workers_instead_of_waiting_for_them() -> None:
    from avatarlab._pool import isolated_imap_unordered

    results = isolated_imap_unordered(time.sleep, [(0,), (60,)], workers=2)
    assert next(results) is None  # the first item is done; the other sleeps for a minute
    started = time.perf_counter()
    results.close()  # what Ctrl-C or SIGTERM in the CLI does to the loop
    assert time.perf_counter() - started < 5.0


# -- the output lock ------------------------------------------------------------------------------


def test_a_locked_folder_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    with output_lock(tmp_path, "prepare"):
        assert (tmp_path / LOCK_NAME).read_text().split()[::2] == [str(os.getpid()), "prepare"]
        holder = run_python(
            "import sys; from avatarlab._outdir import output_lock\n"
            "with output_lock(sys.argv[1], 'eval'): pass",
            str(tmp_path),
        )
        assert holder.returncode != 0
        assert (
            holder.stderr.strip()
            .splitlines()[-1]
            .startswith(
                f"avatarlab.errors.OptionError: {tmp_path} is in use by another avatarlab run "
                f"(pid {os.getpid()} on "
            )
        )
    assert (tmp_path / LOCK_NAME).read_text() == ""  # emptied when the run ends
    killed = run_python(
        "import os, signal, sys; from avatarlab._outdir import output_lock\n"
        "with output_lock(sys.argv[1], 'prepare'): os.kill(os.getpid(), signal.SIGKILL)",
        str(tmp_path),
    )
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / LOCK_NAME).read_text().endswith(" prepare\n")  # stale: its holder died
    with output_lock(tmp_path, "eval"):
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())


def test_stale_temporaries_of_our_pattern_are_removed_and_nothing_else(tmp_path: Path) -> None:
    me = os.getpid()
    names = [
        ".manifest.part-999999-ab_d12x9.parquet",  # atomic_output's pattern, dead writer
        ".manifest.part-1-abcd1234.parquet",  # any other writer: the lock says it is dead
        f".manifest.part-{me}-abcd1234.parquet",  # this process's own: kept
        ".manifest.part-1-abcd1234.csv",  # another suffix
        ".manifest.part-1-abc.parquet",  # not 8 characters
        ".other.part-1-abcd1234.parquet",
        ".manifest.abcd1234.parquet",  # a hidden file of the user's
        "manifest.parquet",
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_owned_temps([tmp_path / "manifest.parquet", tmp_path / "nope" / "a.txt"])
    ours = {".manifest.part-999999-ab_d12x9.parquet", ".manifest.part-1-abcd1234.parquet"}
    assert {p.name for p in removed} == ours
    assert {p.name for p in tmp_path.iterdir()} == set(names) - ours


def test_npz_files_do_not_depend_on_the_time_they_were_written(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "fps": np.float64(25)}
    save_npz(tmp_path / "x.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "x.npz") as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / "x.npz") as data:
        assert data["a"].tolist() == arrays["a"].tolist() and float(data["fps"]) == 25.0


# -- whole runs on one small clip ------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 1.2 s 160x160 talking clip (a few seconds to prepare)."""
    import cv2

    from avatarlab.media import iter_frames, read_audio
    from avatarlab.media.writer import VideoWriter

    root = tmp_path_factory.mktemp("one-clip")
    src = data_dir / "video" / "talk_a.mp4"
    frames = [cv2.resize(f, (160, 160)) for f, t in iter_frames(src) if t < 1.2]
    audio = read_audio(src, sample_rate=16000)[: int(1.2 * 16000)]
    with VideoWriter(root / "talk_a.mp4", 25, audio=audio, sample_rate=16000) as writer:
        for frame in frames:
            writer.write(frame)
    return root


@pytest.fixture(scope="module")
def prepared(clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "out"
    summary = prepare(clip_dir, out, OPTIONS, workers=1)
    assert (summary.ok, summary.kept_segments, summary.problem) == (1, 1, "")
    return out


def fresh_copy(prepared: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    return out


@pytest.mark.slow  # face tracking of the clip
def test_the_result_lists_every_file_of_the_clip_with_its_size(prepared: Path) -> None:
    folder = prepared / "talk_a" / "talk_a"
    result = load_result(folder)
    assert result is not None and result.files is not None
    n = result.segments[0].n_frames
    assert n > 20
    expected = {f"00/{k}.jpg" for k in range(n)} | {"00/audio.wav", "00/faces.npz"}
    assert set(result.files) == expected
    assert all(result.files[name] == (folder / name).stat().st_size for name in expected)
    assert verify_outputs(folder, result, OPTIONS) == result.files


@pytest.mark.slow  # face tracking of the clip
@pytest.mark.parametrize("damage", ["missing frame", "truncated audio", "extra file"])
def test_a_done_clip_whose_files_changed_is_redone_to_the_same_bytes(
    prepared: Path, clip_dir: Path, tmp_path: Path, damage: str
) -> None:
    out = fresh_copy(prepared, tmp_path)
    seg = out / "talk_a" / "talk_a" / "00"
    if damage == "missing frame":
        (seg / "7.jpg").unlink()
    elif damage == "truncated audio":
        (seg / "audio.wav").write_bytes((seg / "audio.wav").read_bytes()[:1000])
    else:
        (seg / "999.jpg").write_bytes(b"from another run")
    assert load_result(seg.parent) is None  # not done any more: redo it
    again = prepare(clip_dir, out, OPTIONS, workers=1)
    assert (again.processed, again.skipped, again.ok) == (1, 0, 1)
    assert tree(out) == tree(prepared)


@pytest.mark.slow  # face tracking of the clip
def test_a_clip_with_fewer_frames_than_its_result_says_fails_verification(
    prepared: Path, tmp_path: Path
) -> None:
    out = fresh_copy(prepared, tmp_path)
    folder = out / "talk_a" / "talk_a"
    result = load_result(folder)
    assert result is not None
    n = result.segments[0].n_frames
    for k in range(n // 2, n):  # the bug: DONE with 114 of its 502 frames
        (folder / "00" / f"{k}.jpg").unlink()
    with pytest.raises(MediaError, match="talk_a/talk_a: the outputs are incomplete: "):
        verify_outputs(folder, result, OPTIONS)
    for k in range(n // 2, n):
        (folder / "00" / f"{k}.jpg").write_bytes(b"")
    faces = folder / "00" / "faces.npz"
    with np.load(faces) as data:
        short = {key: data[key][: n // 2] if data[key].ndim else data[key] for key in data}
    save_npz(faces, **short)
    with pytest.raises(MediaError, match=f"segment 00 has {n // 2} face rows for {n} frames"):
        verify_outputs(folder, result, OPTIONS)


@pytest.mark.slow  # face tracking of the clip
def test_a_result_from_before_the_file_listing_is_checked_in_full(
    prepared: Path, tmp_path: Path
) -> None:
    out = fresh_copy(prepared, tmp_path)
    folder = out / "talk_a" / "talk_a"
    data = json.loads((folder / RESULT_NAME).read_text())
    del data["files"]
    (folder / RESULT_NAME).write_text(json.dumps(data))
    assert load_result(folder, OPTIONS) is not None
    (folder / "00" / "3.jpg").unlink()
    assert load_result(folder, OPTIONS) is None


@pytest.mark.slow  # face tracking of the clip
def test_leftovers_of_a_killed_run_are_removed_by_the_next_one(
    prepared: Path, clip_dir: Path, tmp_path: Path
) -> None:
    out = fresh_copy(prepared, tmp_path)
    speaker = out / "talk_a"
    leftovers = [
        speaker / ".talk_a.partial.4242" / "00" / "3.jpg",  # a worker killed mid-clip
        speaker / ".talk_a.replaced.4242" / "00" / "3.jpg",  # killed while replacing
        out / ".manifest.part-4242-k1lled00.parquet",  # killed while writing the manifest
        out / "filelists" / ".train.part-4242-k1lled00.txt",
        out / ".prepare-options.part-4242-k1lled00.json",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half-written")
    (speaker / "talk_a" / DONE_MARKER).unlink()  # and the clip itself was never finished
    again = prepare(clip_dir, out, OPTIONS, workers=1)
    assert (again.processed, again.ok) == (1, 1)
    assert tree(out) == tree(prepared)
    assert len((out / "run-log.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow  # face tracking of the clip
def test_a_run_on_a_locked_folder_is_refused_before_touching_it(
    prepared: Path, clip_dir: Path, tmp_path: Path
) -> None:
    out = fresh_copy(prepared, tmp_path)
    before = tree(out)
    with output_lock(out, "prepare"), pytest.raises(OptionError) as err:
        prepare(clip_dir, out, OPTIONS, workers=1)
    assert str(err.value).startswith(f"{out} is in use by another avatarlab run (pid {os.getpid()}")
    assert tree(out) == before


@pytest.mark.slow  # face tracking of the clip
def test_an_unguarded_script_prepares_in_process_with_one_worker(
    clip_dir: Path, prepared: Path, tmp_path: Path
) -> None:
    script = tmp_path / "prep.py"
    script.write_text(
        "import sys\n"
        "from avatarlab.datasets import PrepareOptions, prepare\n"
        "options = PrepareOptions(size=32, min_face=16, min_duration=0.5)\n"
        "s = prepare(sys.argv[1], sys.argv[2], options, workers=int(sys.argv[3]))\n"
        "print(s.ok, s.failed)\n"
    )
    one = run_python("", str(script), str(clip_dir), str(tmp_path / "one"), "1")
    assert one.returncode == 0 and one.stdout.split() == ["1", "0"], one.stderr
    assert tree(tmp_path / "one") == tree(prepared)
    two = run_python("", str(script), str(clip_dir), str(tmp_path / "two"), "2")
    assert two.returncode != 0 and f"{script}:4 starts 2 worker processes" in two.stderr
    assert not (tmp_path / "two").exists()  # refused before anything was written


# -- nothing produced (issue 17.5) ----------------------------------------------------------------


def test_the_summary_says_when_every_clip_failed(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    whole = (data_dir / "video" / "talk_a.mp4").read_bytes()
    for name in ("a.mp4", "b.mp4"):
        (src / name).write_bytes(whole[: len(whole) // 3])  # the moov atom is at the end
    summary = prepare(src, tmp_path / "out", OPTIONS, workers=1)
    assert summary.all_failed and (summary.failed, summary.kept_segments) == (2, 0)
    assert summary.problem.startswith("every clip failed (2 of 2); first: a/a: ")
    assert "a.mp4" in summary.problem and "\n" not in summary.problem


def test_the_summary_says_when_every_clip_was_dropped(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "quiet.mp4").symlink_to(data_dir / "video" / "expressions_silent.mp4")
    summary = prepare(src, tmp_path / "out", OPTIONS, workers=1)
    assert not summary.all_failed and summary.dropped == 1
    assert summary.problem == "no clip gave a usable segment: 1 dropped (no audio: 1), 0 failed"
