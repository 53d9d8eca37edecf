"""Speed of the image-quality metrics against their reference implementations, one core.

For one clip (default: the 8 s 512x512 HDTF clip) and a degraded copy made in memory
(Gaussian blur sigma 1.2, then JPEG quality 40 per frame), prints per-frame time of
ours and of the reference run in the same process -- scikit-image ``structural_similarity``
/ ``peak_signal_noise_ratio``, the ``cpbd`` package, plain numpy for MAE/MSE -- their
ratio and the largest difference of the values, then the wall time of the whole
no-weights set (mae, mse, psnr, ssim, cpbd, niqe) over all frames through the metric API.

Targets: CPBD >= 50x the cpbd package, SSIM >= 5x scikit-image, the whole no-weights set
on the 8 s 512x512 pair in < 8 s on one core.

    python bench/metrics.py [VIDEO] [--ref-frames N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "hdtf_aoc_8s.mp4"
NO_WEIGHTS_SET = ("mae", "mse", "psnr", "ssim", "cpbd", "niqe")
TARGETS = {"cpbd": 50.0, "ssim": 5.0}
TOTAL_TARGET_S = 8.0


def pin_one_core() -> None:
    """Run on one core: CPU affinity where the OS allows it, single-threaded OpenCV."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)


def degrade(frames: np.ndarray) -> np.ndarray:
    """The 'generated' clip: blurred (sigma 1.2), then JPEG-re-encoded at quality 40."""
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        blurred = cv2.GaussianBlur(frame, (0, 0), 1.2)
        ok, data = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 40])
        assert ok
        out[i] = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return out


def per_frame_ms(
    fn: Callable[[int], float], indices: range | list[int]
) -> tuple[float, np.ndarray]:
    """Mean milliseconds per call of ``fn(i)`` over ``indices`` and the values it returned."""
    values = []
    t0 = time.perf_counter()
    for i in indices:
        values.append(fn(i))
    return (time.perf_counter() - t0) * 1000 / len(indices), np.asarray(values)


def references() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Reference implementations, keyed like ours: f(pred_frame, ref_frame) -> value."""
    import scipy.ndimage
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    scipy.ndimage.imread = None  # type: ignore[attr-defined]  # the package's broken import
    from cpbd.compute import compute as cpbd_compute

    def ssim(p: np.ndarray, r: np.ndarray) -> float:
        return float(
            structural_similarity(
                r,
                p,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
                channel_axis=-1,
            )
        )

    def mae(p: np.ndarray, r: np.ndarray) -> float:
        return float(np.mean(np.abs(p / 255.0 - r / 255.0)))

    def mse(p: np.ndarray, r: np.ndarray) -> float:
        return float(np.mean((p / 255.0 - r / 255.0) ** 2))

    return {
        "mae": mae,
        "mse": mse,
        "psnr": lambda p, r: float(peak_signal_noise_ratio(r, p, data_range=255)),
        "ssim": ssim,
        "cpbd": lambda p, r: float(cpbd_compute(np.asarray(Image.fromarray(p).convert("L")))),
    }


def ours() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    from avatarlab.metrics.cpbd import cpbd
    from avatarlab.metrics.niqe import niqe
    from avatarlab.metrics.quality import pixel_errors, ssim

    return {
        "mae": lambda p, r: float(pixel_errors(p, r)["mae"][0]),
        "mse": lambda p, r: float(pixel_errors(p, r)["mse"][0]),
        "psnr": lambda p, r: float(pixel_errors(p, r)["psnr"][0]),
        "ssim": lambda p, r: float(ssim(p, r)[0]),
        "cpbd": lambda p, r: float(cpbd(p)[0]),
        "niqe": lambda p, r: float(niqe(p)[0]),
    }


def whole_set_seconds(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """(wall, CPU) seconds of every no-weights metric over the clip pair, through the metric
    API, and the results. CPU time shows the cost when other processes share the core."""
    from avatarlab.metrics.base import EvalContext, create_metric

    ctx = EvalContext(fps=25.0)
    t0, c0 = time.perf_counter(), time.process_time()
    results: dict[str, float] = {}
    for name in NO_WEIGHTS_SET:
        metric = create_metric(name)
        metric.update(pred, ref, ctx)
        results.update(metric.compute())
    return time.perf_counter() - t0, time.process_time() - c0, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_CLIP))
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of the whole set; the fastest is reported (the machine may be shared)",
    )
    parser.add_argument(
        "--ref-frames",
        type=int,
        default=10,
        help="frames the slow references run on (ours runs on every frame)",
    )
    args = parser.parse_args()
    pin_one_core()
    from avatarlab.media import read_video

    ref = read_video(args.video).frames
    pred = degrade(ref)
    n = len(ref)
    print(f"clip: {Path(args.video).name}, {n} frames of {ref.shape[2]}x{ref.shape[1]}, one core")

    mine, theirs = ours(), references()
    for fn in mine.values():  # compile the numba kernels (cached on disk) before timing
        fn(pred[0], ref[0])
    step = max(1, n // args.ref_frames)
    subset = list(range(0, n, step))[: args.ref_frames]
    print(
        f"{'metric':<6} {'ours ms/frame':>14} {'reference ms/frame':>19} {'speed-up':>9}"
        f" {'max |diff|':>11}  target"
    )
    for name, fn in mine.items():
        t_ours, _ = per_frame_ms(lambda i, fn=fn: fn(pred[i], ref[i]), range(n))
        if name not in theirs:
            print(f"{name:<6} {t_ours:>14.2f} {'(no reference)':>19}")
            continue
        _, v_ours = per_frame_ms(lambda i, fn=fn: fn(pred[i], ref[i]), subset)
        t_ref, v_ref = per_frame_ms(lambda i, name=name: theirs[name](pred[i], ref[i]), subset)
        ratio = t_ref / t_ours
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else f">= {target:g}x {'ok' if ratio >= target else 'MISSED'}"
        )
        diff = float(np.max(np.abs(v_ours - v_ref)))
        print(f"{name:<6} {t_ours:>14.2f} {t_ref:>19.2f} {ratio:>8.1f}x {diff:>11.1e}  {verdict}")

    runs = [whole_set_seconds(pred, ref) for _ in range(max(1, args.repeat))]
    total, cpu, results = min(runs, key=lambda run: run[0])
    verdict = "ok" if total < TOTAL_TARGET_S else "MISSED"
    print(
        f"whole no-weights set ({', '.join(NO_WEIGHTS_SET)}) on {n} frame pairs: "
        f"{total:.2f} s wall, {cpu:.2f} s CPU ({total * 1000 / n:.1f} ms/frame; "
        f"target < {TOTAL_TARGET_S:g} s {verdict})"
    )
    if hasattr(os, "getloadavg"):
        print(f"  load average during the run: {os.getloadavg()[0]:.1f}")
    print("  " + ", ".join(f"{k}={v:.4f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
