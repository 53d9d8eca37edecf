"""Speed of face tracking (detection + 478-point mesh + pose + smoothing) on one core.

Decoded frames are loaded first, so the tracking figure measures the tracker
alone; decoding is measured separately on the same clip (``bench/decode.py``)
as the in-process reference. Both run pinned to CPU 0 with single-threaded
OpenCV where the OS allows it. Targets: tracking >= 100 fps and decode >= 400
fps on the 512x512 HDTF clip. The verdict uses the best wall-clock pass; the
rate per CPU-second of the process is printed too, since on a shared machine
wall-clock time also counts other processes' turns on the core.

    python bench/face.py [VIDEO] [--seconds S] [--no-pin]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from avatarlab.face import FaceTracker, TrackerOptions  # noqa: E402
from avatarlab.media import iter_frames, read_video  # noqa: E402
from decode import DEFAULT_CLIP, decode_fps  # noqa: E402

TRACK_TARGET_FPS = 100.0
DECODE_TARGET_FPS = 400.0


def pin_to_one_core() -> str:
    """Pin this process to CPU 0 and make OpenCV single-threaded; describe what was done."""
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        return "pinned to CPU 0, OpenCV 1 thread"
    return "OpenCV 1 thread (CPU pinning unsupported here)"


def tracking_fps(
    frames: np.ndarray, times: np.ndarray, seconds: float, options: TrackerOptions | None = None
) -> tuple[float, float, int]:
    """Tracker speed over ``frames``, passes repeated for at least ``seconds``.

    Returns the best pass in frames per wall-clock second, the rate per CPU
    second of this process (all its threads: contention from other processes on
    a shared machine does not count), and the frames with a face in the last pass.
    """
    best_wall, best_cpu, found = 0.0, 0.0, 0
    deadline = time.perf_counter() + seconds
    while True:
        with FaceTracker(options) as tracker:
            tracker.update(frames[0], float(times[0]))  # graph start-up is not per-frame cost
            t0, c0 = time.perf_counter(), time.process_time()
            n = sum(
                tracker.update(f, float(t)) is not None
                for f, t in zip(frames[1:], times[1:], strict=True)
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best_wall = max(best_wall, (len(frames) - 1) / wall)
        best_cpu = max(best_cpu, (len(frames) - 1) / max(cpu, 1e-9))
        found = n + 1
        if time.perf_counter() >= deadline:
            return best_wall, best_cpu, found


def decode_cpu_fps(path: str, passes: int = 3) -> float:
    """Decoded frames per CPU second of this process (best of ``passes``)."""
    best = 0.0
    for _ in range(passes):
        c0 = time.process_time()
        n = sum(1 for _ in iter_frames(path))
        best = max(best, n / max(time.process_time() - c0, 1e-9))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_CLIP))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-pin", action="store_true", help="use every core")
    args = parser.parse_args()
    how = "all cores" if args.no_pin else pin_to_one_core()
    video = read_video(args.video)
    h, w = video.frames.shape[1:3]
    track, track_cpu, found = tracking_fps(video.frames, video.timestamps, args.seconds)
    decode = decode_fps(args.video, args.seconds / 2)
    decode_cpu = decode_cpu_fps(args.video)
    name = Path(args.video).name
    print(f"{name}: {len(video)} frames {w}x{h}, {how}")
    for label, fps, cpu, target in (
        ("tracking (detect + mesh + pose + smoothing)", track, track_cpu, TRACK_TARGET_FPS),
        ("decode (avatarlab.media.iter_frames)", decode, decode_cpu, DECODE_TARGET_FPS),
    ):
        verdict = "PASS" if fps >= target else "FAIL"
        print(
            f"  {label}: {fps:.0f} fps wall-clock (target >= {target:.0f}) {verdict}; "
            f"{cpu:.0f} fps per CPU-second"
        )
    print(f"  faces found in {found}/{len(video)} frames; tracking / decode = {track / decode:.2f}")


if __name__ == "__main__":
    main()
