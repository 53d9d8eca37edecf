"""Scoring one pair, streaming its frames once, and running many pairs (in a pool).

:func:`evaluate_clip` scores one :class:`ClipJob`:

1. both videos are decoded frame by frame and the prediction is put on the
   reference's timeline and grid (:mod:`avatarlab.metrics.alignment`); every such
   step is written into the clip's notes;
2. per-frame metrics (``Metric.per_clip`` False: MAE, PSNR, SSIM, CPBD, NIQE, FID,
   LMD, MA, CSIM...) get the aligned frames in batches of ``FRAME_BATCH`` as they are
   decoded (face metrics with those frames' tracks);
3. the faces of both videos are tracked once with :class:`avatarlab.face.FaceTracker`
   (when a metric needs them); per-clip metrics (LSE, head motion, beat alignment)
   then get both whole tracks in the context and, those that declare
   ``requires.crops`` (LSE), the clip's 224x224 face crops
   (:mod:`avatarlab.metrics.crops`), cut around the smoothed face boxes in a second
   decoding pass. One clip's crops are the largest thing held in memory.

:func:`run_clips` runs the jobs in-process (``workers=1``) or in a spawn process
pool, with a progress bar; a failing clip or metric is recorded and the run goes on.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avatarlab._pool import isolated_imap_unordered
from avatarlab._util import track_progress
from avatarlab.errors import AvatarLabError, MediaError, OptionError
from avatarlab.media import SPEECH_RATE
from avatarlab.metrics.alignment import (
    AlignedFrame,
    aligned_frames,
    audio_envelope,
    load_audio,
    resize_to,
)
from avatarlab.metrics.base import EvalContext, Metric
from avatarlab.metrics.crops import CROP_SIZE, face_crop, smoothed_boxes
from avatarlab.metrics.pairing import Pair
from avatarlab.metrics.planning import MetricSpec
from avatarlab.metrics.results import ClipResult, describe_error

if TYPE_CHECKING:
    from avatarlab.face import FaceTrack
    from avatarlab.media import MediaInfo

#: Frames per ``update`` call of per-frame metrics (batched for vectorised/neural metrics).
FRAME_BATCH = 8
_ENV_PROGRESS = "AVATARLAB_PROGRESS"


@dataclass(frozen=True)
class ClipJob:
    """Everything a worker needs for one pair (picklable)."""

    pair: Pair
    specs: tuple[MetricSpec, ...]
    weights: tuple[tuple[str, str], ...] = ()
    device: str = "cpu"


class _Timer:
    """Accumulates wall seconds per name into a dict."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = self.into.get(name, 0.0) + time.perf_counter() - start


_WORKER_METRICS: dict[tuple[Any, ...], Metric] = {}
#: False in pool workers: the pool already keeps every core busy.
_PIPELINE = True


def _pipelined() -> bool:
    """Whether a clip's scoring overlaps its decoding and tracking (a thread): in-process
    runs on more than one core."""
    return _PIPELINE and len(os.sched_getaffinity(0)) > 1


def _worker_metric(spec: MetricSpec, job: ClipJob) -> Metric:
    """The worker's instance of a metric (models load once per process), reset."""
    key = (spec.name, spec.options, job.device, job.weights)
    metric = _WORKER_METRICS.get(key)
    if metric is None:
        metric = _WORKER_METRICS[key] = spec.create()
    metric.reset()
    return metric


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """No nested progress bars inside a clip (the runner draws one over clips)."""
    old = os.environ.get(_ENV_PROGRESS)
    os.environ[_ENV_PROGRESS] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_ENV_PROGRESS, None)
        else:
            os.environ[_ENV_PROGRESS] = old


def _add_series(res: ClipResult, name: str, data: Mapping[str, np.ndarray], n: int) -> None:
    """Store per-frame series, aligned from frame 0 (shorter ones NaN-padded at the end)."""
    for key, values in data.items():
        v = np.asarray(values, dtype=np.float64).ravel()[:n]
        if len(v) < n:
            v = np.concatenate([v, np.full(n - len(v), np.nan)])
        col = key if key not in res.series else f"{name}_{key}"
        res.series[col] = v
        res.series_metric[col] = name


def evaluate_clip(job: ClipJob) -> ClipResult:
    """Evaluate one pair; never raises for a clip's failure (it is recorded instead)."""
    start = time.perf_counter()
    pair = job.pair
    res = ClipResult(pair.name, str(pair.pred), None if pair.ref is None else str(pair.ref))
    try:
        with _quiet_progress():
            _run_clip(job, res)
    except Exception as err:  # a clip's failure must not end a run of hundreds
        res.status, res.error = "failed", describe_error(err)
    res.seconds = time.perf_counter() - start
    return res


def _probe_pair(pair: Pair, res: ClipResult) -> tuple[MediaInfo, MediaInfo | None]:
    """Probe both videos, fill the clip's facts and resampling notes."""
    from avatarlab.media import probe

    pinfo = probe(pair.pred)
    rinfo = probe(pair.ref) if pair.ref is not None else None
    for role, info in (("prediction", pinfo), ("reference", rinfo)):
        if info is not None and (not info.has_video or info.is_image):
            raise MediaError(f"the {role} {info.path} is not a video: pass a video file")
    main = rinfo or pinfo
    res.fps, res.width, res.height = main.fps, main.width, main.height
    res.pred_fps, res.pred_frames = pinfo.fps, pinfo.n_frames
    res.pred_size = (pinfo.width, pinfo.height)
    if rinfo is not None:
        _format_notes(res, rinfo.fps, (main.width, main.height))
    return pinfo, rinfo


def _clip_metrics(job: ClipJob, res: ClipResult, has_audio: bool) -> dict[str, Metric]:
    """The metrics that can run on this clip (no audio: audio metrics skipped)."""
    metrics: dict[str, Metric] = {}
    for spec in job.specs:
        if spec.audio and not has_audio:
            res.skipped[spec.name] = (
                "needs audio, and neither the given audio nor the videos have any: "
                "pass the driving audio"
            )
            continue
        try:
            metrics[spec.name] = _worker_metric(spec, job)
        except Exception as err:
            res.errors[spec.name] = describe_error(err)
    return metrics


def _run_clip(job: ClipJob, res: ClipResult) -> None:
    from avatarlab.face.track import FaceTracker, collect_track

    pair = job.pair
    timer = _Timer(res.timings)
    pinfo, rinfo = _probe_pair(pair, res)
    size = (res.width, res.height)
    with timer("audio"):
        audio, res.audio_source = load_audio(pair)
    metrics = _clip_metrics(job, res, audio is not None)
    by_name = {s.name: s for s in job.specs}
    frame_metrics = {n: m for n, m in metrics.items() if not by_name[n].per_clip}
    clip_metrics = {n: m for n, m in metrics.items() if by_name[n].per_clip}
    track = bool(clip_metrics) or any(by_name[n].face for n in frame_metrics)
    ctx = EvalContext(
        fps=res.fps,
        audio=audio,
        sample_rate=SPEECH_RATE,
        weights=dict(job.weights),
        device=job.device,
    )

    trackers = []
    if track:
        trackers = [FaceTracker()] + ([FaceTracker()] if pair.ref is not None else [])
    states: list[list[Any]] = [[] for _ in trackers]
    times: list[float] = []
    pred_times: list[float] = []
    pred_index: list[int] = []
    frame_series: dict[str, list[dict[str, np.ndarray]]] = {n: [] for n in frame_metrics}
    frames = aligned_frames(pair.pred, pair.ref, pinfo.fps, size if pair.ref else None)
    batch: list[AlignedFrame] = []

    def score(
        preds: np.ndarray, refs: np.ndarray | None, batch_ctx: EvalContext, span: str
    ) -> None:
        """Per-frame metrics on one batch (in the scoring thread when pipelined)."""
        for name in list(frame_metrics):
            try:
                with timer(name):
                    frame_metrics[name].update(preds, refs, batch_ctx)
                    frame_series[name].append(frame_metrics[name].per_frame())
            except Exception as err:
                res.errors[name] = f"frames {span}: {describe_error(err)}"
                del frame_metrics[name]

    # With more than one core, batch k is scored in a thread while batch k + 1 is decoded
    # and tracked (the kernels, OpenCV, dlib's and MediaPipe's C++ release the GIL). One
    # batch in flight, metrics see the batches in order: the same values either way.
    pool = ThreadPoolExecutor(1, "avatarlab-score") if _pipelined() else None
    pending: Future[None] | None = None

    def feed() -> None:
        """Per-frame metrics get the buffered frames as one batch, with their tracks."""
        nonlocal pending
        preds = np.stack([b.pred for b in batch])
        refs = None if pair.ref is None else np.stack([b.ref for b in batch])  # type: ignore[misc]
        batch_ctx = ctx
        if trackers:
            batch_ctx = replace(
                ctx,
                pred_track=collect_track(states[0][-len(batch) :]),
                ref_track=collect_track(states[1][-len(batch) :]) if len(states) > 1 else None,
            )
        span = f"{batch[0].index}-{batch[-1].index}"
        batch.clear()
        if pending is not None:
            pending.result()
        if pool is None:
            score(preds, refs, batch_ctx, span)
        else:
            pending = pool.submit(score, preds, refs, batch_ctx, span)

    try:
        while True:
            with timer("decode"):
                step = next(frames, None)
            if step is None:
                break
            times.append(step.t)
            pred_times.append(step.pred_t)
            pred_index.append(step.pred_index)
            with timer("tracking"):
                for k, tracker in enumerate(trackers):
                    frame = step.pred if k == 0 or step.ref is None else step.ref
                    states[k].append((tracker.update(frame, step.t), step.t, size))
            batch.append(step)
            if len(batch) == FRAME_BATCH:
                feed()
        if batch:
            feed()
        if pending is not None:
            pending.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        for tracker in trackers:
            tracker.close()
    n = res.frames = len(times)
    if n == 0:
        raise MediaError(f"{pair.pred} and its reference have no frames in common")
    _length_notes(res, pinfo.n_frames, rinfo.n_frames if rinfo else n, pred_index)
    t_arr = np.asarray(times)
    res.series = {
        "t": t_arr,
        "pred_frame": np.asarray(pred_index, dtype=np.float64),
        "pred_t": np.asarray(pred_times),
    }
    if audio is not None:
        res.series["audio_env"] = audio_envelope(audio, SPEECH_RATE, t_arr, res.fps)

    for name, metric in frame_metrics.items():
        with timer(name):
            _finish(res, name, metric, by_name[name])
        parts = frame_series[name]
        if parts:
            keys = list(dict.fromkeys(k for p in parts for k in p))
            _add_series(
                res,
                name,
                {k: np.concatenate([np.ravel(p.get(k, np.nan)) for p in parts]) for k in keys},
                n,
            )

    if not trackers:
        return
    tracks = [collect_track(s) for s in states]
    _track_series(res, tracks)
    if clip_metrics:
        clip_ctx = replace(
            ctx, pred_track=tracks[0], ref_track=tracks[1] if len(tracks) > 1 else None
        )
        _score_per_clip(job, res, clip_metrics, clip_ctx, tracks, pred_index, timer)


def _track_series(res: ClipResult, tracks: list[FaceTrack]) -> None:
    """Face presence and mouth opening per frame of each track; a note on missing faces."""
    from avatarlab.metrics.lipsync import mouth_opening

    for role, tr in zip(("pred", "ref"), tracks, strict=False):
        res.series[f"face_{role}"] = tr.found.astype(np.float64)
        res.series[f"mouth_open_{role}"] = mouth_opening(tr.landmarks68())
        if not tr.found.all():
            res.notes.append(
                f"no face in {int((~tr.found).sum())} of {res.frames} {role} frames "
                "(track-based series are NaN there; crop boxes interpolated)"
            )


def _score_per_clip(
    job: ClipJob,
    res: ClipResult,
    metrics: dict[str, Metric],
    ctx: EvalContext,
    tracks: list[FaceTrack],
    pred_index: list[int],
    timer: _Timer,
) -> None:
    """Per-clip metrics: whole tracks, and the clip's face crops (a second decoding pass,
    only when a metric declares ``requires.crops``; the others get ``(N, 0, 0, 3)``)."""
    pair = job.pair
    by_name = {s.name: s for s in job.specs}
    crops: list[np.ndarray | None] = [None, None]
    crop_error = ""
    if any(by_name[name].crops for name in metrics):
        with timer("crops"):
            need_ref = any(by_name[name].crops and by_name[name].reference for name in metrics)
            size = (res.width, res.height) if pair.ref else None
            crops, crop_error = _clip_crops(pair, size, tracks, pred_index, need_ref)
    empty = np.empty((res.frames, 0, 0, 3), np.uint8)
    for name, metric in metrics.items():
        pred, ref = crops if by_name[name].crops else [empty, None if pair.ref is None else empty]
        if pred is None:
            res.errors[name] = crop_error
            continue
        if by_name[name].reference and ref is None:
            res.errors[name] = crop_error or "no reference face crops"
            continue
        try:
            with timer(name):
                metric.update(pred, ref, ctx)
        except Exception as err:
            res.errors[name] = describe_error(err)
            continue
        with timer(name):
            done = _finish(res, name, metric, by_name[name])
        if done:
            _add_series(res, name, metric.per_frame(), res.frames)


def _format_notes(res: ClipResult, ref_fps: float, size: tuple[int, int]) -> None:
    """Say how the prediction is brought onto the reference's timeline and grid."""
    res.resized = res.pred_size != size
    res.resampled = abs(res.pred_fps - ref_fps) > 1e-3
    if res.resampled:
        res.notes.append(
            f"prediction at {res.pred_fps:.3f} fps resampled to the reference's "
            f"{ref_fps:.3f} fps (nearest-timestamp frame selection)"
        )
    if res.resized:
        res.notes.append(
            f"prediction {res.pred_size[0]}x{res.pred_size[1]} resized to the reference's "
            f"{size[0]}x{size[1]} (area filter when shrinking, bicubic when enlarging)"
        )


def _finish(res: ClipResult, name: str, metric: Metric, spec: MetricSpec) -> bool:
    """Store a metric's per-clip values (and mergeable state); False if it failed.

    A mergeable metric's state is stored first, so the clip is pooled into the summary
    even when its per-clip ``compute()`` fails (too few frames for IS, one frame for
    FID): its per-clip values are then NaN with a note. ``pooled_only`` metrics (FID,
    IS) skip the per-clip ``compute()`` altogether (a 2048x2048 ``sqrtm`` per clip for
    FID) and report NaN per clip under their ``keys``.
    """
    if spec.mergeable:
        try:
            res.states[name] = metric.state()
        except Exception as err:
            res.errors[name] = describe_error(err)
            return False
        nan_values = {k: math.nan for k in metric.keys}
        if metric.pooled_only:
            res.values[name] = nan_values
            return True
    try:
        res.values[name] = {k: float(v) for k, v in metric.compute().items()}
        res.notes += metric.notes(res.values[name])
    except Exception as err:
        if not spec.mergeable:
            res.errors[name] = describe_error(err)
            return False
        res.values[name] = nan_values
        res.notes.append(
            f"{name}: no per-clip value ({describe_error(err)}); the clip's frames are "
            "still pooled into the summary"
        )
    return True


def _length_notes(res: ClipResult, pred_n: int, ref_n: int, used: list[int]) -> None:
    if res.ref is None:
        return
    distinct = len(set(used))
    if ref_n > res.frames:
        res.notes.append(
            f"the reference's last {ref_n - res.frames} frames lie past the prediction's end "
            f"and were not evaluated ({res.frames} of {ref_n} frames compared)"
        )
    last = max(used) + 1
    if pred_n > last:
        res.notes.append(
            f"the prediction's last {pred_n - last} frames lie past the reference's end"
        )
    if res.resampled:
        res.notes.append(
            f"{distinct} of the prediction's {pred_n} frames used; "
            f"{res.frames - distinct} repeated, {last - distinct} dropped"
        )


def _clip_crops(
    pair: Pair,
    size: tuple[int, int] | None,
    tracks: list[FaceTrack],
    pred_index: list[int],
    need_ref: bool,
) -> tuple[list[np.ndarray | None], str]:
    """Second decoding pass: each video's ``(N, 224, 224, 3)`` crops around smoothed boxes.

    Output frame ``i`` shows prediction frame ``pred_index[i]`` (the timeline mapping of
    the first pass), so only the prediction is decoded again, plus the reference when a
    per-clip metric compares with it. Returns ``[pred_crops, ref_crops]`` (None where
    there is no face at all) and why any is missing.
    """
    from avatarlab.media import iter_frames

    out: list[np.ndarray | None] = [None, None]
    errors: list[str] = []
    roles: list[tuple[str, Path]] = [("prediction", pair.pred)]
    if need_ref and pair.ref is not None:
        roles.append(("reference", pair.ref))
    for k, (role, path) in enumerate(roles):
        try:
            boxes = smoothed_boxes(tracks[k].boxes)
        except AvatarLabError as err:
            errors.append(f"no {role} face crops: {err}")
            continue
        n = len(boxes)
        crops = np.empty((n, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        want: list[int] | range = pred_index if k == 0 else range(n)
        i = 0
        for j, (frame, _) in enumerate(iter_frames(path)):
            if i >= n:
                break
            if want[i] != j:
                continue  # a prediction frame the resampling dropped
            if k == 0 and size is not None:
                frame = resize_to(frame, size)
            while i < n and want[i] == j:
                crops[i] = face_crop(frame, boxes[i])
                i += 1
        out[k] = crops
    return out, "; ".join(errors)


# --------------------------------------------------------------------------- many clips


def _init_worker() -> None:
    """Pool workers: one thread each for native libraries (the pool is the parallelism)."""
    global _PIPELINE
    _PIPELINE = False
    os.environ[_ENV_PROGRESS] = "0"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)


def _crashed(job: ClipJob, err: BaseException) -> ClipResult:
    res = ClipResult(
        job.pair.name, str(job.pair.pred), None if job.pair.ref is None else str(job.pair.ref)
    )
    res.status = "failed"
    res.error = (
        f"the worker process died on this clip ({type(err).__name__}): a crash in native "
        "code or out of memory; try it alone in one process (jobs=1)"
    )
    return res


def _pool_results(jobs: list[ClipJob], workers: int) -> Iterator[ClipResult]:
    """Run ``evaluate_clip`` in a crash-isolating spawn pool; a clip that kills its worker
    is reported as failed and the others finish."""
    yield from isolated_imap_unordered(
        evaluate_clip,
        ((job,) for job in jobs),
        workers,
        on_crash=lambda args, err: _crashed(args[0], err),
        initializer=_init_worker,
    )


def run_clips(jobs: list[ClipJob], workers: int = 1) -> list[ClipResult]:
    """Evaluate every job, in-process (``workers=1``) or in a pool; results in job order."""
    if workers < 1:
        raise OptionError(f"jobs must be >= 1, got {workers}")
    workers = min(workers, max(1, len(jobs)))
    source: Iterable[ClipResult] = (
        (evaluate_clip(j) for j in jobs) if workers == 1 else _pool_results(jobs, workers)
    )
    order = {j.pair.name: i for i, j in enumerate(jobs)}
    results = list(track_progress(source, "evaluating clips", total=len(jobs)))
    return sorted(results, key=lambda r: order[r.name])


__all__ = ["FRAME_BATCH", "ClipJob", "evaluate_clip", "run_clips"]
