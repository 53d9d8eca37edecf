"""End-to-end speed of ``avatarlab eval`` on one core, per metric and for the no-weights set.

Each row is a fresh process, ``python -m avatarlab eval --pred P --ref R --metrics M -o
DIR --jobs 1``, pinned to one core (the ``sched_setaffinity`` call ``taskset -c CORE``
makes), timed from its start to its exit after ``report.html`` is written: decoding,
face tracking, identity embeddings, metrics and the report are all included. Beside it:

- ``cpu s``: the process's user + system CPU time (``wait4``). On a shared machine the
  wall time includes waiting for the core; the CPU time is what an idle core would take;
- ``metric s``: time inside the metric itself (its ``update``/``compute`` calls, as the
  runner records them in ``results.json`` under ``clips[].timings``), i.e. the kernel
  without process start, decoding, tracking, crops and report;
- for the whole set, the stages the runner records (decode, tracking, crops, audio) and
  the rest (interpreter start, imports, planning, writing tables and report.html).

The whole set is every registered metric that runs without a checkpoint file. Target:
the set under 8 s wall on one core for the 8 s 512x512 pair. Default pair: the shared
8 s HDTF clip (reference) and a copy blurred (sigma 0.8), brightened by 3 levels and
re-encoded with H.264 CRF 28 (prediction), written to a temporary folder.

``--all-cores`` runs the processes unpinned instead: the runner then scores each frame
batch in a thread while the next is decoded and tracked (same values, less wall time).

    python bench/eval_e2e.py [--pred P --ref R] [--metrics a,b] [--set-only] [--core 0]
                             [--all-cores]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "hdtf_aoc_8s.mp4"
TARGET_S = 8.0
STAGES = ("decode", "tracking", "crops", "audio")


@dataclass(frozen=True)
class Run:
    """One eval process: wall and CPU seconds, the runner's timings of its one clip."""

    wall: float
    cpu: float
    clip_s: float
    timings: dict[str, float]
    errors: dict[str, str]

    def metric_s(self, metrics: list[str]) -> float:
        """Seconds inside the given metrics' own calls."""
        return sum(self.timings.get(m, 0.0) for m in metrics)


def make_pred(ref: Path, out: Path) -> Path:
    """A lightly altered re-encode of ``ref`` (blur 0.8, +3 levels, CRF 28), with its audio."""
    import cv2

    from avatarlab.media import iter_frames, probe, read_audio, write_video

    info = probe(ref)
    frames = (
        cv2.convertScaleAbs(cv2.GaussianBlur(frame, (0, 0), 0.8), alpha=1.0, beta=3.0)
        for frame, _ in iter_frames(ref)
    )
    audio = read_audio(ref, 16000) if info.has_audio else None
    write_video(out, frames, info.fps, audio=audio, sample_rate=16000, crf=28)
    return out


def no_weights_metrics() -> list[str]:
    """Registered metrics that need no checkpoint file."""
    from avatarlab.metrics.base import create_metric, metric_names

    return [n for n in metric_names() if not create_metric(n).requires.weights]


def run_eval(pred: Path, ref: Path, metrics: list[str], out: Path, core: int | None) -> Run:
    """One fresh ``avatarlab eval`` process pinned to ``core`` (None: unpinned), until it exits."""
    cmd = [sys.executable, "-m", "avatarlab", "eval", "--pred", str(pred), "--ref", str(ref)]
    cmd += ["--metrics", ",".join(metrics), "-o", str(out), "--jobs", "1"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=dict(os.environ, AVATARLAB_PROGRESS="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=None if core is None else (lambda: os.sched_setaffinity(0, {core})),
    )
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0 or not (out / "report.html").is_file():
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise SystemExit(f"eval --metrics {','.join(metrics)} failed (exit {code}): {tail}")
    clip = json.loads((out / "results.json").read_text())["clips"][0]
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        clip_s=float(clip.get("seconds", 0.0)),
        timings={k: float(v) for k, v in clip.get("timings", {}).items()},
        errors=dict(clip.get("errors", {})),
    )


def row(name: str, run: Run, metrics: list[str]) -> str:
    """One table line: wall, CPU and in-metric seconds (and the metrics that failed)."""
    line = f"{name:<16} {run.wall:>7.2f} {run.cpu:>7.2f} {run.metric_s(metrics):>9.2f}"
    return line + (f"   failed: {', '.join(sorted(run.errors))}" if run.errors else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pred", type=Path, help="generated video (default: altered copy of --ref)")
    ap.add_argument("--ref", type=Path, default=DEFAULT_CLIP, help="reference video")
    ap.add_argument("--metrics", help="comma-separated metrics (default: the no-weights set)")
    ap.add_argument(
        "--set-only", action="store_true", help="only the whole set, no per-metric rows"
    )
    ap.add_argument("--core", type=int, default=min(os.sched_getaffinity(0)), help="CPU to pin to")
    ap.add_argument("--all-cores", action="store_true", help="do not pin the processes")
    args = ap.parse_args()
    core = None if args.all_cores else args.core
    where = f"{len(os.sched_getaffinity(0))} cores" if core is None else f"core {core}"

    metrics = args.metrics.split(",") if args.metrics else no_weights_metrics()
    with tempfile.TemporaryDirectory(prefix="eval_e2e_") as tmp:
        work = Path(tmp)
        pred = args.pred or make_pred(args.ref, work / "pred.mp4")
        load = os.getloadavg()[0]
        print(f"pair: {pred} vs {args.ref}; {where}; load average {load:.1f}")
        print(f"{'metrics':<16} {'wall s':>7} {'cpu s':>7} {'metric s':>9}")
        if not args.set_only:
            for m in metrics:
                print(row(m, run_eval(pred, args.ref, [m], work / m, core), [m]), flush=True)
        whole = run_eval(pred, args.ref, metrics, work / "set", core)
        print(row(f"set ({len(metrics)})", whole, metrics))
        stages = {s: whole.timings.get(s, 0.0) for s in STAGES}
        stages["metrics"] = whole.metric_s(metrics)
        stages["start, imports, report"] = whole.wall - whole.clip_s
        print("set stages (wall s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
        inside = sorted(((m, whole.timings.get(m, 0.0)) for m in metrics), key=lambda kv: -kv[1])
        print(
            "set, each metric's own calls (wall s): " + ", ".join(f"{k} {v:.2f}" for k, v in inside)
        )
        verdict = "meets" if whole.wall < TARGET_S else "misses"
        print(
            f"target: whole no-weights set < {TARGET_S:g} s wall on one core: {verdict} it "
            + ("" if core is not None else "(this run used every core) ")
            + f"({whole.wall:.2f} s wall, {whole.cpu:.2f} s CPU)"
        )
        slowest = sorted(whole.timings.items(), key=lambda kv: -kv[1])[:5]
        print("slowest parts of the clip: " + ", ".join(f"{k} {v:.2f}" for k, v in slowest))
        if load > len(os.sched_getaffinity(0)):
            print("note: the machine is loaded (wall includes waiting for the core): see cpu s")


if __name__ == "__main__":
    main()
