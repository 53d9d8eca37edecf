"""The evaluation runner: pair videos, stream each pair once, feed every metric, collect.

A *pair* is a prediction (generated video) and, optionally, its reference (the real
video), matched by file stem when folders are given. Each pair is evaluated by
:func:`evaluate_clip`, on its own, streaming the frames:

1. both videos are decoded frame by frame; the prediction is put on the reference's
   timeline (for each reference frame, the prediction frame with the nearest
   timestamp) and resized to the reference's size (area filter when shrinking,
   bicubic when enlarging), and every such step is written into the clip's notes;
2. per-frame metrics (``Requirements.per_clip`` false: MAE, PSNR, SSIM, CPBD, NIQE, FID,
   LMD, MA, CSIM...) get the aligned frames in batches of ``FRAME_BATCH`` as they are
   decoded (face metrics with those frames' tracks);
3. the faces of both videos are tracked once with :class:`avatarlab.face.FaceTracker`
   (when a metric needs them); per-clip metrics (LSE, head motion, beat alignment)
   then get the clip's 224x224 face crops, cut with SyncNet's geometry around the
   temporally smoothed face box in a second decoding pass, with both tracks in the
   context. One clip's crops are the largest thing held in memory.

:func:`run_clips` runs the pairs in-process (``jobs=1``) or in a spawn process pool,
with a progress bar; a failing clip or metric is recorded and the run goes on.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab._pool import isolated_imap_unordered
from avatarlab._util import track_progress
from avatarlab.errors import AvatarLabError, MediaError, MissingWeightsError, OptionError
from avatarlab.metrics.base import EvalContext, Metric, create_metric, metric_names

#: Files taken from a folder of videos (by suffix, case-insensitive).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})
#: Files taken from a folder given as ``--audio`` (videos also work: their audio is used).
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus"})
#: Rate of the audio handed to metrics (``EvalContext.audio``), Hz.
EVAL_RATE = 16000
#: Side of the face crops per-clip metrics receive (SyncNet's input size).
CROP_SIZE = 224
#: Frames per ``update`` call of per-frame metrics (batched for vectorised/neural metrics).
FRAME_BATCH = 8
#: Kernel of the median filter syncnet_python's run_pipeline smooths face boxes with.
BOX_SMOOTH = 13
_ENV_PROGRESS = "AVATARLAB_PROGRESS"


# --------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class Pair:
    """One clip to evaluate: prediction, reference (None: no-reference metrics only), audio."""

    name: str
    pred: Path
    ref: Path | None = None
    audio: Path | None = None


@dataclass(frozen=True)
class PairPlan:
    """The pairs found, and the files that had no partner (matched by file stem)."""

    pairs: tuple[Pair, ...]
    unmatched_pred: tuple[Path, ...] = ()
    unmatched_ref: tuple[Path, ...] = ()
    unmatched_audio: tuple[Path, ...] = ()


def _media_files(folder: Path, suffixes: frozenset[str]) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise OptionError(
                f"{folder} holds two files named {p.stem!r} ({out[p.stem].name}, {p.name}): "
                "pairs are matched by name, so keep one"
            )
        out[p.stem] = p
    return out


def _existing(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what} {p} does not exist: pass a video file or a folder of videos")
    return p


def match_pairs(
    pred: str | os.PathLike[str],
    ref: str | os.PathLike[str] | None = None,
    audio: str | os.PathLike[str] | None = None,
) -> PairPlan:
    """Pair predictions with references (and audio) by file stem.

    ``pred``/``ref`` are both files (one pair, whatever their names) or both folders
    (videos matched by stem; files without a partner are listed in the plan). ``audio``
    is one file (used for every pair) or a folder matched by stem like the references.
    """
    p = _existing(pred, "prediction")
    r = None if ref is None else _existing(ref, "reference")
    a = None if audio is None else _existing(audio, "audio")
    if p.is_file():
        if r is not None and r.is_dir():
            raise OptionError(
                f"--pred {p} is a file but --ref {r} is a folder: pass two files or two folders"
            )
        if a is not None and a.is_dir():
            audio_files = _media_files(a, AUDIO_SUFFIXES | VIDEO_SUFFIXES)
            a = audio_files.get(p.stem)
        return PairPlan((Pair(p.stem, p, r, a),))
    preds = _media_files(p, VIDEO_SUFFIXES)
    if not preds:
        raise MediaError(f"{p} holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
    if r is not None and r.is_file():
        raise OptionError(
            f"--pred {p} is a folder but --ref {r} is a file: pass two files or two folders"
        )
    refs = _media_files(r, VIDEO_SUFFIXES) if r is not None else {}
    audios: dict[str, Path] = {}
    if a is not None and a.is_dir():
        audios = _media_files(a, AUDIO_SUFFIXES | VIDEO_SUFFIXES)
    names = sorted(preds) if r is None else sorted(set(preds) & set(refs))
    if r is not None and not names:
        raise OptionError(
            f"no file name of {p} matches one of {r}: pairs are matched by file stem "
            f"(e.g. {next(iter(preds))} needs {r}/{next(iter(preds))}.mp4)"
        )
    pairs = tuple(
        Pair(n, preds[n], refs.get(n), audios.get(n) if a is not None and a.is_dir() else a)
        for n in names
    )
    return PairPlan(
        pairs=pairs,
        unmatched_pred=tuple(preds[n] for n in sorted(preds) if r is not None and n not in refs),
        unmatched_ref=tuple(refs[n] for n in sorted(refs) if n not in preds),
        unmatched_audio=tuple(audios[n] for n in sorted(audios) if n not in set(names)),
    )


# --------------------------------------------------------------------------- metric plan


@dataclass(frozen=True)
class Skip:
    """A metric left out of the run (or out of some clips), with the reason.

    ``file``/``source``: the missing checkpoint's file name and official source.
    ``clips``: the clips it was skipped for (empty: every clip).
    """

    metric: str
    reason: str
    file: str = ""
    source: str = ""
    clips: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is created and fed in the workers."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    per_clip: bool = False
    reference: bool = True
    audio: bool = False
    face: bool = False
    mergeable: bool = False


@dataclass(frozen=True)
class MetricPlan:
    """Metrics that will run, metrics skipped up front, checkpoint paths, conventions."""

    specs: tuple[MetricSpec, ...]
    skipped: tuple[Skip, ...]
    weights: tuple[tuple[str, str], ...]
    conventions: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)


def _instantiate(name: str, options: Mapping[str, Any], device: str) -> Metric:
    """``create_metric(name, **options)``, passing ``device`` to factories that take one."""
    kwargs = dict(options)
    from avatarlab.metrics.base import _METRICS

    factory = _METRICS.get(name)
    if factory is not None and "device" not in kwargs:
        with contextlib.suppress(TypeError, ValueError):
            if "device" in inspect.signature(factory).parameters:
                kwargs["device"] = device
    try:
        return create_metric(name, **kwargs)
    except TypeError as err:
        raise OptionError(f"bad options {dict(options)} for metric {name!r}: {err}") from None


def _per_clip(metric: Metric) -> bool:
    req = metric.requires
    declared = getattr(req, "per_clip", None)
    if declared is not None:
        return bool(declared)
    return bool(req.audio or (req.face_track and not req.reference))


def _checkpoint_key(key: str, requested: Iterable[str]) -> str:
    """Map a ``--weights`` key (checkpoint name, its file name, or a metric name) to a name."""
    from avatarlab.weights import known_checkpoints

    known = known_checkpoints()
    for ck in known:
        if key in (ck.name, ck.filename):
            return ck.name
    if key in metric_names():
        needs = create_metric(key).requires.weights
        if len(needs) == 1:
            return needs[0]
    raise OptionError(
        f"--weights {key}=...: {key!r} is neither a checkpoint ({', '.join(c.name for c in known)}) "
        f"nor a metric that needs one (requested: {', '.join(requested) or 'none'})"
    )


def normalize_weights(weights: Mapping[str, Any] | None) -> dict[str, str]:
    """Checkpoint name -> path for user weights keyed by checkpoint, file or metric name."""
    out: dict[str, str] = {}
    for key, path in (weights or {}).items():
        out[_checkpoint_key(key, [])] = str(path)
    return out


def plan_metrics(
    names: Iterable[str] | None,
    has_reference: bool,
    weights: Mapping[str, Any] | None = None,
    device: str = "cpu",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> MetricPlan:
    """Decide which metrics run and why the others cannot.

    ``names`` None selects every registered metric. A metric is skipped (with its
    reason, never silently) when its checkpoint is not found (the reason names the
    file and its official source) or when it needs a reference and none was given.
    Missing audio is decided per clip by the workers.
    """
    from avatarlab.weights import get_checkpoint, resolve

    available = metric_names()
    chosen = list(dict.fromkeys(names)) if names is not None else available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise OptionError(
            f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(available)}"
        )
    options = options or {}
    stray = sorted(set(options) - set(chosen))
    if stray:
        raise OptionError(f"options given for metrics that do not run: {', '.join(stray)}")
    user_weights = normalize_weights(weights)
    specs: list[MetricSpec] = []
    skipped: list[Skip] = []
    resolved: dict[str, str] = {}
    conventions: list[tuple[str, str]] = []
    for name in chosen:
        metric = _instantiate(name, options.get(name, {}), device)
        req = metric.requires
        conventions.append((name, str(getattr(metric, "conventions", ""))))
        missing: Skip | None = None
        for ck_name in req.weights:
            try:
                resolved[ck_name] = str(resolve(ck_name, user_weights.get(ck_name)))
            except MissingWeightsError as err:
                ck = get_checkpoint(ck_name)
                missing = Skip(name, str(err), ck.filename, ck.source)
                break
        if missing is not None:
            skipped.append(missing)
            continue
        if req.reference and not has_reference:
            skipped.append(Skip(name, "needs a reference video: pass --ref REAL"))
            continue
        specs.append(
            MetricSpec(
                name=name,
                options=tuple(sorted(options.get(name, {}).items())),
                per_clip=_per_clip(metric),
                reference=req.reference,
                audio=req.audio,
                face=req.face_track,
                mergeable=callable(getattr(metric, "state", None))
                and callable(getattr(metric, "merge_state", None)),
            )
        )
    return MetricPlan(
        tuple(specs), tuple(skipped), tuple(sorted(resolved.items())), tuple(conventions)
    )


# --------------------------------------------------------------------------- one clip


@dataclass(frozen=True)
class ClipJob:
    """Everything a worker needs for one pair (picklable)."""

    pair: Pair
    specs: tuple[MetricSpec, ...]
    weights: tuple[tuple[str, str], ...] = ()
    device: str = "cpu"


@dataclass
class ClipResult:
    """What one pair gave: per-clip values, per-frame series, notes, failures.

    ``values``: metric -> its ``compute()`` on this clip. ``series``: column -> ``(frames,)``
    per-frame values (runner columns ``t``, ``pred_t``, ``audio_env``, ``mouth_open_*``
    and each metric's ``per_frame()`` series, whose metric ``series_metric`` names). ``errors``: metric -> why it failed here.
    ``skipped``: metric -> why it did not run here. ``states``: per-clip states of
    set-level metrics (``Metric.state()``). ``timings``: seconds per metric and per
    runner stage (``decode``, ``tracking``, ``crops``).
    """

    name: str
    pred: str
    ref: str | None
    audio_source: str = "none"
    status: str = "ok"
    error: str = ""
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    pred_frames: int = 0
    pred_fps: float = 0.0
    pred_size: tuple[int, int] = (0, 0)
    resampled: bool = False
    resized: bool = False
    notes: list[str] = field(default_factory=list)
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    series_metric: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def describe_error(err: BaseException) -> str:
    """One line for a failure: the message of our errors, type and message otherwise."""
    if isinstance(err, AvatarLabError):
        return str(err)
    return f"{type(err).__name__}: {err}"


@dataclass
class _Aligned:
    """One step of the reference timeline: the frames compared and where they came from."""

    index: int
    t: float
    pred: np.ndarray
    ref: np.ndarray | None
    pred_index: int
    pred_t: float


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize RGB ``frame`` to ``size`` (W, H): area filter shrinking, bicubic enlarging."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == size:
        return frame
    shrink = size[0] * size[1] < w * h
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def aligned_frames(
    pred: Path, ref: Path | None, pred_fps: float, size: tuple[int, int] | None
) -> Iterator[_Aligned]:
    """Stream the pair on the reference's timeline (nearest prediction timestamp).

    Without a reference the prediction's own frames are yielded. The stream stops at
    the reference's end, or when the reference runs more than half a prediction frame
    interval past the prediction's last frame.
    """
    from avatarlab.media import iter_frames

    if ref is None:
        for i, (frame, t) in enumerate(iter_frames(pred)):
            yield _Aligned(i, t, frame, None, i, t)
        return
    preds = iter_frames(pred)
    first = next(preds, None)
    if first is None:
        raise MediaError(f"{pred} has no frames")
    cur, cur_t, cur_i = first[0], first[1], 0
    nxt = next(preds, None)
    half = 0.5 / pred_fps if pred_fps > 0 else 0.02
    resized: np.ndarray | None = None
    for i, (ref_frame, t) in enumerate(iter_frames(ref)):
        while nxt is not None and abs(nxt[1] - t) < abs(cur_t - t):
            cur, cur_t = nxt
            cur_i += 1
            resized = None
            nxt = next(preds, None)
        if nxt is None and t - cur_t > half + 1e-6:
            return
        if resized is None:
            resized = _resize(cur, size) if size is not None else cur
        yield _Aligned(i, t, resized, ref_frame, cur_i, cur_t)


def smoothed_boxes(boxes: np.ndarray) -> np.ndarray:
    """Square face boxes ``(N, 4)`` smoothed over time as syncnet_python's run_pipeline does.

    NaN rows (no face) are interpolated from their neighbours; the box centre and half
    size (the larger half side) are median-filtered with kernel 13 (zero-padded ends, the
    largest odd kernel that fits for shorter clips), exactly as
    :func:`avatarlab.metrics.syncnet.syncnet_crops` smooths, so cropping frame by frame
    with these boxes gives its crops. Raises ``NoFaceError`` when no frame has a face.
    """
    from scipy.signal import medfilt

    from avatarlab.metrics._tracks import fill_gaps

    b = fill_gaps(np.asarray(boxes, dtype=np.float64), "face crops")
    half = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    cy, cx = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
    n = len(b)
    kernel = min(BOX_SMOOTH, n if n % 2 else n - 1)
    half, cy, cx = (medfilt(v, kernel) if kernel > 1 else v for v in (half, cy, cx))
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def face_crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The ``(224, 224, 3)`` crop of RGB ``frame`` around one smoothed box, SyncNet geometry.

    The same pixels as :func:`avatarlab.metrics.syncnet.syncnet_crops` for that box (its
    region ``[y - s, y + s(1 + 2c)] x [x - s(1 + c), x + s(1 + c)]`` of the frame padded
    with grey 110, bilinear resize), without padding the whole frame: only the crop's
    own canvas is filled (~4x faster on 512x512 frames).
    """
    import cv2

    from avatarlab.metrics.syncnet import _CROP_PAD_VALUE, _CROP_SCALE

    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    s = max(y1 - y0, x1 - x0) / 2
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    c = _CROP_SCALE
    pad = int(s * (1 + 2 * c))
    my, mx = cy + pad, cx + pad
    # numpy's slice rules on the padded frame, as the reference slices it
    top, bottom, _ = slice(int(my - s), int(my + s * (1 + 2 * c))).indices(h + 2 * pad)
    left, right, _ = slice(int(mx - s * (1 + c)), int(mx + s * (1 + c))).indices(w + 2 * pad)
    canvas = np.full((max(bottom - top, 0), max(right - left, 0), 3), _CROP_PAD_VALUE, np.uint8)
    sy0, sy1 = max(top, pad), min(bottom, pad + h)
    sx0, sx1 = max(left, pad), min(right, pad + w)
    if sy1 > sy0 and sx1 > sx0:
        canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = frame[
            sy0 - pad : sy1 - pad, sx0 - pad : sx1 - pad
        ]
    return cv2.resize(canvas, (CROP_SIZE, CROP_SIZE))


def audio_envelope(audio: np.ndarray, rate: int, times: np.ndarray, fps: float) -> np.ndarray:
    """RMS of ``audio`` in a one-frame window centred on each time ``(N,)``; 0 outside."""
    x = np.asarray(audio, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    half = 0.5 * rate / fps
    lo = np.clip(np.round(times * rate - half).astype(np.int64), 0, len(x))
    hi = np.clip(np.round(times * rate + half).astype(np.int64), 0, len(x))
    span = np.maximum(hi - lo, 1)
    return np.sqrt(np.maximum(csum[hi] - csum[lo], 0.0) / span)


def _load_audio(pair: Pair) -> tuple[np.ndarray | None, str]:
    """Audio for metrics: ``--audio``, else the prediction's track, else the reference's."""
    from avatarlab.errors import NoAudioError
    from avatarlab.media import read_audio

    if pair.audio is not None:
        return read_audio(pair.audio, EVAL_RATE), f"audio file {pair.audio.name}"
    for role, path in (("prediction", pair.pred), ("reference", pair.ref)):
        if path is None:
            continue
        with contextlib.suppress(NoAudioError):
            return read_audio(path, EVAL_RATE), f"{role}'s audio track"
    return None, "none"


_WORKER_METRICS: dict[tuple[Any, ...], Metric] = {}


def _worker_metric(spec: MetricSpec, job: ClipJob) -> Metric:
    """The worker's instance of a metric (models load once per process), reset."""
    key = (spec.name, spec.options, job.device, job.weights)
    metric = _WORKER_METRICS.get(key)
    if metric is None:
        metric = _WORKER_METRICS[key] = _instantiate(spec.name, dict(spec.options), job.device)
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


def _run_clip(job: ClipJob, res: ClipResult) -> None:
    from avatarlab.face.track import FaceTracker, collect_track
    from avatarlab.media import probe

    pair = job.pair
    timer = _Timer(res.timings)
    pinfo = probe(pair.pred)
    rinfo = probe(pair.ref) if pair.ref is not None else None
    for role, info in (("prediction", pinfo), ("reference", rinfo)):
        if info is not None and (not info.has_video or info.is_image):
            raise MediaError(f"the {role} {info.path} is not a video: pass a video file")
    main = rinfo or pinfo
    res.fps, res.width, res.height = main.fps, main.width, main.height
    res.pred_fps, res.pred_frames = pinfo.fps, pinfo.n_frames
    res.pred_size = (pinfo.width, pinfo.height)
    size = (main.width, main.height)
    if rinfo is not None:
        _format_notes(res, rinfo.fps, size)
    with timer("audio"):
        audio, res.audio_source = _load_audio(pair)

    metrics: dict[str, Metric] = {}
    for spec in job.specs:
        if spec.audio and audio is None:
            res.skipped[spec.name] = (
                "needs audio, and neither --audio nor the videos have any: pass --audio"
            )
            continue
        try:
            metrics[spec.name] = _worker_metric(spec, job)
        except Exception as err:
            res.errors[spec.name] = describe_error(err)
    by_name = {s.name: s for s in job.specs}
    frame_metrics = {n: m for n, m in metrics.items() if not by_name[n].per_clip}
    clip_metrics = {n: m for n, m in metrics.items() if by_name[n].per_clip}
    track = bool(clip_metrics) or any(by_name[n].face for n in frame_metrics)
    ctx = EvalContext(
        fps=main.fps,
        audio=audio,
        sample_rate=EVAL_RATE,
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
    batch: list[_Aligned] = []

    def feed() -> None:
        """Per-frame metrics get the buffered frames as one batch, with their tracks."""
        preds = np.stack([b.pred for b in batch])
        refs = None if pair.ref is None else np.stack([b.ref for b in batch])  # type: ignore[misc]
        ctx.extra["frames"] = np.array([b.index for b in batch])
        ctx.extra["times"] = np.array([b.t for b in batch])
        if trackers:
            ctx.pred_track = collect_track(states[0][-len(batch) :])
            ctx.ref_track = collect_track(states[1][-len(batch) :]) if len(states) > 1 else None
        for name in list(frame_metrics):
            try:
                with timer(name):
                    frame_metrics[name].update(preds, refs, ctx)
                    per_frame = getattr(frame_metrics[name], "per_frame", None)
                    if per_frame is not None:
                        frame_series[name].append(per_frame())
            except Exception as err:
                span = f"{batch[0].index}-{batch[-1].index}"
                res.errors[name] = f"frames {span}: {describe_error(err)}"
                del frame_metrics[name]
        batch.clear()

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
    finally:
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
        res.series["audio_env"] = audio_envelope(audio, EVAL_RATE, t_arr, main.fps)

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
    from avatarlab.metrics.lipsync import mouth_opening

    tracks = [collect_track(s) for s in states]
    ctx.pred_track = tracks[0]
    ctx.ref_track = tracks[1] if len(tracks) > 1 else None
    for role, tr in zip(("pred", "ref"), tracks, strict=False):
        res.series[f"face_{role}"] = tr.found.astype(np.float64)
        res.series[f"mouth_open_{role}"] = mouth_opening(tr.landmarks68())
        if not tr.found.all():
            res.notes.append(
                f"no face in {int((~tr.found).sum())} of {n} {role} frames "
                "(track-based series are NaN there; crop boxes interpolated)"
            )
    if not clip_metrics:
        return
    with timer("crops"):
        need_ref = any(by_name[name].reference for name in clip_metrics)
        crops, crop_error = _clip_crops(
            pair, size if pair.ref else None, tracks, pred_index, need_ref
        )
    ctx.extra["pred_crops224"] = crops[0]
    ctx.extra["ref_crops224"] = crops[1]
    ctx.extra["timestamps"] = t_arr
    for name, metric in clip_metrics.items():
        if crops[0] is None:
            res.errors[name] = crop_error
            continue
        if by_name[name].reference and crops[1] is None:
            res.errors[name] = crop_error or "no reference face crops"
            continue
        try:
            with timer(name):
                metric.update(crops[0], crops[1], ctx)
        except Exception as err:
            res.errors[name] = describe_error(err)
            continue
        with timer(name):
            done = _finish(res, name, metric, by_name[name])
        per_frame = getattr(metric, "per_frame", None)
        if done and per_frame is not None:
            _add_series(res, name, per_frame(), n)


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
    """Store a metric's per-clip values (and set-level state); False if it failed.

    A set-level (mergeable) metric's state is stored first, so the clip is pooled into
    the summary even when its per-clip ``compute()`` fails (too few frames for IS, one
    frame for FID): its per-clip values are then NaN with a note. Metrics with
    ``pooled_only = True`` (FID, IS) skip the per-clip ``compute()`` altogether (a
    2048x2048 ``sqrtm`` per clip for FID) and report NaN per clip under their ``keys``.
    """
    if spec.mergeable:
        try:
            res.states[name] = metric.state()  # type: ignore[attr-defined]
        except Exception as err:
            res.errors[name] = describe_error(err)
            return False
        nan_values = {k: math.nan for k in getattr(metric, "keys", ())}
        if getattr(metric, "pooled_only", False):
            res.values[name] = nan_values
            return True
    try:
        res.values[name] = {k: float(v) for k, v in metric.compute().items()}
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
    tracks: list[Any],
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
    roles = [("prediction", pair.pred)]
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
        want = pred_index if k == 0 else range(n)
        i = 0
        for j, (frame, _) in enumerate(iter_frames(path)):
            if i >= n:
                break
            if want[i] != j:
                continue  # a prediction frame the resampling dropped
            if k == 0 and size is not None:
                frame = _resize(frame, size)
            while i < n and want[i] == j:
                crops[i] = face_crop(frame, boxes[i])
                i += 1
        out[k] = crops
    return out, "; ".join(errors)


# --------------------------------------------------------------------------- many clips


def _init_worker() -> None:
    """Pool workers: one thread each for native libraries (the pool is the parallelism)."""
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
        "code or out of memory; try it alone with --jobs 1"
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


# --------------------------------------------------------------------------- summary


def summarize(
    results: list[ClipResult], plan: MetricPlan, device: str = "cpu"
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Summary per metric and how it was formed ("mean over N clips" or "pooled ...").

    Per-clip values are averaged over the clips where the metric ran (NaN values left
    out, +inf kept, as the metric's own frame mean would). Set-level metrics (with
    ``state``/``merge_state``) are pooled over all clips instead.
    """
    summary: dict[str, dict[str, float]] = {}
    how: dict[str, str] = {}
    for spec in plan.specs:
        clips = [r for r in results if r.status == "ok" and spec.name in r.values]
        if not clips:
            continue
        if spec.mergeable:
            states = [r.states[spec.name] for r in clips if spec.name in r.states]
            total = _instantiate(spec.name, dict(spec.options), device)
            total.reset()
            for s in states:
                total.merge_state(s)  # type: ignore[attr-defined]
            pooled = f"pooled over {len(states)} clip{'s' if len(states) != 1 else ''}"
            try:
                summary[spec.name] = {k: float(v) for k, v in total.compute().items()}
            except Exception as err:
                how[spec.name] = f"{pooled}: failed: {describe_error(err)}"
                continue
            how[spec.name] = pooled
            continue
        keys = list(dict.fromkeys(k for r in clips for k in r.values[spec.name]))
        out: dict[str, float] = {}
        for k in keys:
            vals = np.array([r.values[spec.name].get(k, math.nan) for r in clips], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            out[k] = float(vals.mean()) if vals.size else math.nan
        summary[spec.name] = out
        how[spec.name] = f"mean over {len(clips)} clip{'s' if len(clips) != 1 else ''}"
    return summary, how


def clip_skips(results: list[ClipResult]) -> list[Skip]:
    """Per-clip skips (e.g. no audio) grouped by metric and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for metric, reason in r.skipped.items():
            groups.setdefault((metric, reason), []).append(r.name)
    return [Skip(m, reason, clips=tuple(c)) for (m, reason), c in groups.items()]


@dataclass
class EvalResults:
    """Everything an evaluation produced; :mod:`avatarlab.metrics.report` writes it out.

    ``summary``: metric -> score -> value over all clips (``summary_method`` says how);
    ``clips``: one :class:`ClipResult` per pair, in name order; ``skipped``: metrics that
    did not run (everywhere, or for the clips listed); ``files``: output name -> path.
    """

    pred: str
    ref: str | None
    audio: str | None
    plan: PairPlan
    metrics: tuple[str, ...]
    conventions: dict[str, str]
    skipped: list[Skip]
    clips: list[ClipResult]
    summary: dict[str, dict[str, float]]
    summary_method: dict[str, str]
    weights: dict[str, str] = field(default_factory=dict)
    jobs: int = 1
    device: str = "cpu"
    seconds: float = 0.0
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[ClipResult]:
        """Clips that could not be evaluated at all."""
        return [c for c in self.clips if c.status != "ok"]

    def metric_errors(self) -> list[tuple[str, str, str]]:
        """``(clip, metric, message)`` for every metric that failed on a clip."""
        return [(c.name, m, msg) for c in self.clips for m, msg in c.errors.items()]

    def value(self, clip: str, key: str) -> float:
        """Per-clip value of score ``key`` (e.g. ``"psnr"``) for ``clip``; NaN if absent."""
        for c in self.clips:
            if c.name == clip:
                for values in c.values.values():
                    if key in values:
                        return values[key]
        return math.nan


__all__ = [
    "CROP_SIZE",
    "EvalResults",
    "EVAL_RATE",
    "ClipJob",
    "ClipResult",
    "MetricPlan",
    "MetricSpec",
    "Pair",
    "PairPlan",
    "Skip",
    "aligned_frames",
    "audio_envelope",
    "clip_skips",
    "evaluate_clip",
    "face_crop",
    "match_pairs",
    "normalize_weights",
    "plan_metrics",
    "run_clips",
    "smoothed_boxes",
    "summarize",
]
