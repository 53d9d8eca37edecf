"""Fault injection: kill ``prepare`` and ``eval`` at random moments, re-run, compare (issue 17.1).

Each case starts the job in its own session (so it is a process group) with a
marker variable in its environment, waits until its worker processes run plus a
seeded random delay, and sends SIGKILL or SIGTERM to the main process or to the
whole group. Two seconds later no process carrying the marker may be alive (pool
workers, multiprocessing's resource tracker). A re-run into the same folder must
then give the same tree as one uninterrupted run: the same files and folders with
the same bytes, except what is a timing by nature:

* prepare: ``seconds``, ``cpu_seconds`` and ``pid`` in each ``clip.json``, and the
  run log ``run-log.jsonl`` (one line per finished run: times, and how many clips
  that run skipped; its last line is checked on its own);
* eval: ``created`` and ``seconds`` in ``results.json`` and each clip's ``seconds``
  and ``timings`` there, the ``seconds`` column of ``per_video.parquet``/``.csv``,
  and durations ("6.0 s") in ``report.html``.

A second run started on a folder in use is refused with one line.

Inputs are tiny (three 1.2 s clips at 160x160, 32 px crops) so the whole file
runs in about a minute on two cores.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

TAG = "AVATARLAB_FAULT_TAG"
CLIPS = ("talk_a.mp4", "talk_b.mp4", "hdtf_aoc_8s.mp4")
SECONDS = 1.2
SIDE = 160
#: Fields of prepare's clip.json that are timings (or the pid of the worker) by nature.
CLIP_TIMINGS = ("seconds", "cpu_seconds", "pid")
#: Fields of eval's results.json (top level, and per clip) that are timings by nature.
EVAL_TIMINGS = ("created", "seconds")
EVAL_CLIP_TIMINGS = ("seconds", "timings")
#: Column of eval's per_video tables with each clip's run time.
EVAL_TIME_COLUMN = "seconds"
#: A duration in report.html.
DURATION = re.compile(rb"\d+(\.\d+)? s\b")

PREPARE = (
    "import sys\n"
    "from avatarlab.datasets import PrepareOptions, prepare\n"
    "options = PrepareOptions(size=32, min_face=16, min_duration=0.5)\n"
    "summary = prepare(sys.argv[1], sys.argv[2], options, workers=2)\n"
    "sys.exit(1 if summary.problem else 0)\n"
)
EVAL = (
    "import sys\n"
    "from avatarlab.metrics.evaluate import evaluate\n"
    "evaluate(sys.argv[1], sys.argv[2], metrics='psnr', out_dir=sys.argv[3], jobs=2)\n"
)
CLI = (
    "import sys\n"
    "from avatarlab.cli import main\n"
    "sys.argv = ['avatarlab', 'prepare', sys.argv[1], '-o', sys.argv[2], '--size', '32',\n"
    "            '--min-face', '16', '--min-duration', '0.5', '--workers', '2']\n"
    "main()\n"
)
CASES = [(sig, target) for sig in (signal.SIGKILL, signal.SIGTERM) for target in ("main", "group")]


# -- processes ---------------------------------------------------------------------------------


def tagged_pids(tag: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``TAG=tag``."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            if stat.rsplit(b")", 1)[1].split()[0] == b"Z":
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def worker_pids(tag: str) -> list[int]:
    """The marked processes that are multiprocessing workers (not the main process, not
    the resource tracker)."""
    workers = []
    for pid in tagged_pids(tag):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
    return workers


def describe(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{pid}/status").read_text()
            ppid = next(line for line in status.splitlines() if line.startswith("PPid"))
            lines.append(f"{pid} ({ppid.strip()}): {cmd[:120]}")
    return "; ".join(lines)


@dataclass
class Job:
    """A job started in its own process group with a marker in its environment."""

    proc: subprocess.Popen[bytes]
    tag: str
    log: Path
    started: float

    @classmethod
    def start(cls, code: str, *args: Path, log: Path) -> Job:
        tag = uuid.uuid4().hex
        env = {**os.environ, TAG: tag, "AVATARLAB_PROGRESS": "0"}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, *map(str, args)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(proc, tag, log, time.perf_counter())

    def wait_for_workers(self, timeout: float = 60.0) -> None:
        """Return as soon as a worker process of the job runs."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if worker_pids(self.tag):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no worker seen: {self.log.read_text()[-2000:]}")

    def finish(self, timeout: float = 120.0) -> int:
        code = self.proc.wait(timeout)
        assert code == 0, f"exit {code}: {self.log.read_text()[-2000:]}"
        return code

    def kill(self, sig: signal.Signals, target: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            if target == "group":
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        self.proc.wait(30)

    def survivors_after(self, seconds: float) -> list[int]:
        """Marked processes still alive ``seconds`` after now (polled; empty once all died)."""
        deadline = time.perf_counter() + seconds
        while True:
            alive = tagged_pids(self.tag)
            if not alive or time.perf_counter() >= deadline:
                return alive
            time.sleep(0.05)


# -- trees ---------------------------------------------------------------------------------------


def content(path: Path) -> object:
    """What a file holds, without the timings named in the module docstring."""
    if path.name == "clip.json":
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in CLIP_TIMINGS}
    if path.name == "results.json":
        data = json.loads(path.read_text())
        clips = [{k: v for k, v in c.items() if k not in EVAL_CLIP_TIMINGS} for c in data["clips"]]
        return {**{k: v for k, v in data.items() if k not in EVAL_TIMINGS}, "clips": clips}
    if path.name == "per_video.parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).drop_columns([EVAL_TIME_COLUMN]).to_pylist()
    if path.name == "per_video.csv":
        with open(path, newline="") as f:
            return [
                {k: v for k, v in r.items() if k != EVAL_TIME_COLUMN} for r in csv.DictReader(f)
            ]
    data = path.read_bytes()
    if path.name == "report.html":
        data = DURATION.sub(b"<duration>", data)
    return hashlib.sha256(data).hexdigest()


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """Every file and folder below ``root`` (hidden ones included) and its content."""
    tree: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path.name in skip:
            continue
        rel = path.relative_to(root).as_posix()
        tree[rel + "/" if path.is_dir() else rel] = "folder" if path.is_dir() else content(path)
    return tree


def assert_same_tree(got: dict[str, object], want: dict[str, object]) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    assert not (missing or extra or changed), (
        f"missing {missing[:5]}, extra {extra[:5]}, changed {changed[:5]}"
    )


def check_prepare_log(out: Path) -> None:
    """The run log's last line is a complete, successful run over every clip."""
    lines = (out / "run-log.jsonl").read_text().splitlines()
    assert 1 <= len(lines) <= 2  # two when the killed run had already logged its end
    last = json.loads(lines[-1])
    assert (last["clips"], last["failed"]) == (len(CLIPS), 0)
    assert last["processed"] + last["skipped"] == len(CLIPS)


# -- inputs and reference runs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three short small clips with speech, and two pred/ref pairs made from them."""
    import cv2

    from avatarlab.media import iter_frames, read_audio
    from avatarlab.media.writer import VideoWriter

    root = tmp_path_factory.mktemp("faults")
    for side in ("src", "pred", "ref"):
        (root / side).mkdir()
    for name in CLIPS:
        frames = []
        for frame, t in iter_frames(data_dir / "video" / name):
            if t >= SECONDS:
                break
            frames.append(cv2.resize(frame, (SIDE, SIDE), interpolation=cv2.INTER_AREA))
        audio = read_audio(data_dir / "video" / name, sample_rate=16000)[: int(16000 * SECONDS)]
        with VideoWriter(root / "src" / name, 25, audio=audio, sample_rate=16000) as w:
            for frame in frames:
                w.write(frame)
        if name in CLIPS[:2]:
            with VideoWriter(root / "ref" / name, 25) as w:
                for frame in frames:
                    w.write(frame)
            with VideoWriter(root / "pred" / name, 25) as w:
                for frame in frames:
                    w.write(cv2.GaussianBlur(frame, (5, 5), 1.5))
    return root


@dataclass
class Reference:
    tree: dict[str, object]
    working: float  # seconds during which worker processes ran


def reference_run(code: str, args: tuple[Path, ...], out: Path, log: Path) -> Reference:
    job = Job.start(code, *args, log=log)
    job.wait_for_workers()
    began = time.perf_counter()
    while worker_pids(job.tag):
        time.sleep(0.02)
    working = time.perf_counter() - began
    job.finish()
    assert job.survivors_after(2.0) == []
    return Reference(snapshot(out, skip=("run-log.jsonl",)), working)


@pytest.fixture(scope="module")
def prepared(corpus: Path) -> Reference:
    out = corpus / "prepared-reference"
    ref = reference_run(PREPARE, (corpus / "src", out), out, corpus / "prepare-reference.log")
    check_prepare_log(out)
    kept = [k for k in ref.tree if k.endswith("/00/faces.npz")]
    assert len(kept) == len(CLIPS)  # every clip gave a segment: the runs below have work
    return ref


@pytest.fixture(scope="module")
def evaluated(corpus: Path) -> Reference:
    out = corpus / "eval-reference"
    args = (corpus / "pred", corpus / "ref", out)
    ref = reference_run(EVAL, args, out, corpus / "eval-reference.log")
    assert {"results.json", "report.html", "per_video.parquet"} <= set(ref.tree)
    return ref


def kill_and_rerun(
    code: str,
    args: tuple[Path, ...],
    out: Path,
    ref: Reference,
    sig: signal.Signals,
    target: str,
    seed: str,
    log: Path,
) -> dict[str, object]:
    """Kill a run at a seeded random moment while its workers run, check that nothing of
    it survives, re-run it to the end and return the output tree.

    The moment is a seeded share of the reference run's working time after the first
    worker starts; when the run was faster than the reference and its workers had
    already ended, its output is deleted and it is tried again, earlier.
    """
    share = random.Random(seed).uniform(0.05, 0.8)
    for attempt in range(4):
        delay = share * ref.working / 4**attempt
        job = Job.start(code, *args, log=log)
        job.wait_for_workers()
        time.sleep(delay)
        working = len(worker_pids(job.tag))
        job.kill(sig, target)
        survivors = job.survivors_after(2.0)
        assert survivors == [], (
            f"{sig.name} to the {target} {delay:.2f} s after the workers started, with "
            f"{working} working, left {describe(survivors)}"
        )
        if working:
            break
        shutil.rmtree(out, ignore_errors=True)
    else:
        raise AssertionError("the workers had always ended before the kill")
    again = Job.start(code, *args, log=log.with_suffix(".rerun.log"))
    again.finish()
    assert again.survivors_after(2.0) == []
    return snapshot(out, skip=("run-log.jsonl",))


# -- the cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "target"), CASES, ids=lambda v: getattr(v, "name", v))
def test_killed_prepare_leaves_no_process_and_a_rerun_gives_the_same_tree(
    corpus: Path, prepared: Reference, sig: signal.Signals, target: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    tree = kill_and_rerun(
        PREPARE,
        (corpus / "src", out),
        out,
        prepared,
        sig,
        target,
        f"prepare-{sig.name}-{target}",
        tmp_path / "run.log",
    )
    assert_same_tree(tree, prepared.tree)
    check_prepare_log(out)


@pytest.mark.parametrize(("sig", "target"), CASES, ids=lambda v: getattr(v, "name", v))
def test_killed_eval_leaves_no_process_and_a_rerun_gives_the_same_tree(
    corpus: Path, evaluated: Reference, sig: signal.Signals, target: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    tree = kill_and_rerun(
        EVAL,
        (corpus / "pred", corpus / "ref", out),
        out,
        evaluated,
        sig,
        target,
        f"eval-{sig.name}-{target}",
        tmp_path / "run.log",
    )
    assert_same_tree(tree, evaluated.tree)


def test_sigterm_to_the_command_line_interrupts_prepare_at_once(
    corpus: Path, prepared: Reference, tmp_path: Path
) -> None:
    """The CLI turns SIGTERM into an interrupt: the workers are stopped, not waited for."""
    out = tmp_path / "out"
    job = Job.start(CLI, corpus / "src", out, log=tmp_path / "cli.log")
    job.wait_for_workers()
    time.sleep(random.Random("cli-SIGTERM").uniform(0.05, 0.5) * prepared.working)
    working = len(worker_pids(job.tag))
    sent = time.perf_counter()
    job.proc.send_signal(signal.SIGTERM)
    code = job.proc.wait(30)
    took = time.perf_counter() - sent
    assert job.survivors_after(2.0) == []
    if working:  # else the run had ended: nothing to interrupt
        assert code == 130 and "interrupted" in job.log.read_text(), job.log.read_text()
        assert took < 5.0, f"the interrupted run took {took:.1f} s to exit"
    Job.start(CLI, corpus / "src", out, log=tmp_path / "rerun.log").finish()
    assert_same_tree(snapshot(out, skip=("run-log.jsonl",)), prepared.tree)
    check_prepare_log(out)


def test_a_second_run_on_a_folder_in_use_is_refused_with_one_line(
    corpus: Path, prepared: Reference, tmp_path: Path
) -> None:
    from avatarlab.datasets import PrepareOptions, prepare
    from avatarlab.errors import OptionError

    out = tmp_path / "out"
    first = Job.start(PREPARE, corpus / "src", out, log=tmp_path / "first.log")
    lock = out / ".avatarlab.lock"
    deadline = time.perf_counter() + 60
    while not (lock.is_file() and lock.read_text()) and time.perf_counter() < deadline:
        time.sleep(0.02)
    holder = lock.read_text().split()
    assert holder[0] == str(first.proc.pid) and holder[2] == "prepare"
    # the command line: one line naming the folder, and a non-zero exit
    second = subprocess.run(
        [sys.executable, "-m", "avatarlab", "prepare", str(corpus / "src"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AVATARLAB_PROGRESS": "0"},
    )
    lines = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
    assert second.returncode != 0 and len(lines) == 1, lines
    assert str(out) in lines[0] and "in use" in lines[0] and f"pid {first.proc.pid}" in lines[0]
    assert first.proc.poll() is None, "the first run ended before the second was refused"
    # the library: the same refusal as an OptionError
    with pytest.raises(OptionError, match="in use by another avatarlab run") as err:
        prepare(corpus / "src", out, PrepareOptions(size=32), workers=1)
    assert "\n" not in str(err.value)
    first.finish()
    # the refused runs changed nothing: the first one's output is the uninterrupted tree
    assert_same_tree(snapshot(out, skip=("run-log.jsonl",)), prepared.tree)
    check_prepare_log(out)
