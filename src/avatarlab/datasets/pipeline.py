"""Turn a raw corpus into training data: 25 fps face crops, 16 kHz audio, landmarks, manifest.

:func:`prepare_clip` does one clip and is a pure function of ``(clip, options,
out_dir)``: the executors (:mod:`avatarlab.datasets.executors`) call it in worker
processes or Ray tasks, and it gives the same outputs wherever it runs.
:func:`prepare` walks a corpus, skips clips finished by an earlier run, runs the
rest on the chosen executor with a progress bar, then writes the manifest, the
speaker-grouped file lists and a run log.

Per clip:

1. probe the source; a clip without audio is dropped with reason ``"no audio"``;
2. pass 1 over the frames: shot cuts (jumps in a thumbnail's grey levels), the
   main face (tracked, re-acquired at every cut), its size and head pose, and the sharpness
   (CPBD) of the face every ``sharpness_every`` frames;
3. split each shot into runs of usable frames; runs where the face is absent,
   too small or turned too far, runs shorter than ``min_duration`` and runs
   whose median sharpness is below ``min_sharpness`` are dropped, each with its
   reason;
4. pass 2 over the frames: for every kept segment, pick the source frame shown
   at each 25 fps output time (from the source's exact timestamps, see
   :func:`avatarlab.datasets.segments.select_frames`), crop the face (boxes
   smoothed over ``smooth`` frames) and write the preset's layout, with the
   audio cut to exactly ``n_frames / fps`` seconds at 16 kHz mono.

Output layout (``OUT`` is the output root)::

    OUT/SPEAKER/UTTERANCE/          one folder per clip, renamed into place when complete
        clip.json                   the clip's result (all segments, kept and dropped) and
                                    the size of every file the clip folder holds
        DONE                        marker: the clip is finished, a re-run skips it
        NN/                         one folder per kept segment (NN = segment index)
            0.jpg 1.jpg ... audio.wav    preset wav2lip (Wav2Lip's preprocessed layout)
            video.mp4                    presets hdtf / syncnet (H.264 + AAC 16 kHz)
            faces.npz               per output frame: 478-point landmarks in crop pixels,
                                    crop matrix, source box, head pose, source time
    OUT/manifest.parquet            see avatarlab.datasets.manifest
    OUT/filelists/{train,val,test}.txt
    OUT/run-log.jsonl               one JSON line per run: host, executor, timings
    OUT/prepare-options.json        the options that decide the clip folders, written by the
                                    first run; a later run into OUT must use the same ones
    OUT/.avatarlab.lock             held by the running run (see avatarlab._outdir)

A run holds the lock on ``OUT``, so a second run into it is refused while the
first lives. A clip works in ``OUT/SPEAKER/.UTTERANCE.partial.PID`` and is
renamed to its final name only when everything is written and verified (every
kept segment holds exactly its frames, audio samples and face rows, and
``clip.json`` lists the size of each file). A re-run skips a clip only when its
folder still matches that listing; the partial folders and temporary files of a
killed run are deleted at the start of the next one, and their clips redone. A
clip that raises (corrupt file, ...) is recorded as ``failed`` with the error
and the run continues.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import time
import traceback
import wave
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avatarlab._outdir import output_lock, remove_owned_temps
from avatarlab._util import atomic_output, make_output_folder, track_progress
from avatarlab.datasets.executors import EXECUTORS, Executor, get_executor
from avatarlab.datasets.manifest import (
    FILELIST_DIR,
    MANIFEST_NAME,
    SPLITS,
    round_figure,
    split_of,
    write_filelists,
    write_manifest,
)
from avatarlab.datasets.options import PrepareOptions, Preset
from avatarlab.datasets.readers import IMAGE_EXTENSIONS, Clip, read_clips
from avatarlab.datasets.segments import runs, select_frames, shot_ranges, smooth
from avatarlab.errors import AvatarLabError, MediaError, NoAudioError, NoVideoError, OptionError

DONE_MARKER = "DONE"
RESULT_NAME = "clip.json"
RUN_LOG_NAME = "run-log.jsonl"
OPTIONS_NAME = "prepare-options.json"
FACES_NAME = "faces.npz"
AUDIO_NAME = "audio.wav"
VIDEO_NAME = "video.mp4"
#: Work folders of clips being written (``.UTTERANCE.partial.PID``) and finished folders
#: being replaced (``.UTTERANCE.replaced.PID``); what a killed run leaves of them is removed.
_LEFTOVER = re.compile(r"\..+\.(partial|replaced)(\.\d+)?")

#: Side in pixels of the face crop whose CPBD is the sharpness figure (independent of ``size``).
QUALITY_SIZE = 128
#: Crop scale (face box longer side -> crop side) of the sharpness crop.
QUALITY_SCALE = 1.2
#: Frames of a clip up to this many bytes are kept from pass 1 for pass 2 (per worker);
#: longer clips are decoded twice instead.
FRAME_CACHE_BYTES = 512 * 2**20
#: Frame rate assumed for image sequences whose file names carry no timestamps.
SEQUENCE_FPS = 30.0
#: Audio whose peak stays below this is treated as silence.
SILENCE_PEAK = 1e-4

# Reasons recorded in the manifest.
REASON_NO_AUDIO = "no audio"
REASON_SILENT = "silent audio"
REASON_NO_FACE = "no face"
REASON_SMALL = "face too small"
REASON_TURNED = "head turned"
REASON_BLURRED = "blurred"
REASON_SHORT = "too short"
REASON_NO_SEGMENT = "no usable segment"

_OK, _NO_FACE, _SMALL, _TURNED = 0, 1, 2, 3
_LABEL_REASON = {_NO_FACE: REASON_NO_FACE, _SMALL: REASON_SMALL, _TURNED: REASON_TURNED}


@dataclass
class SegmentResult:
    """One span of a clip between shot cuts / quality changes, kept or dropped.

    Times are source seconds; ``n_frames`` counts output frames (0 when dropped);
    ``output`` is the segment folder relative to the output root ("" when dropped);
    quality figures are ``None`` when there was nothing to measure.
    """

    index: int
    start: float
    end: float
    status: str
    reason: str = ""
    n_frames: int = 0
    face_px: float | None = None
    sharpness: float | None = None
    max_yaw: float | None = None
    max_pitch: float | None = None
    output: str = ""


@dataclass
class ClipResult:
    """What :func:`prepare_clip` did with one clip.

    ``status``: ``"ok"`` (at least one kept segment), ``"dropped"`` (none; ``reason``
    says why) or ``"failed"`` (an error; ``reason`` holds it). ``fps``: the output
    frame rate the clip was prepared at (0 in results written before it was recorded).
    ``files``: size in bytes of every file of the clip folder (paths relative to it,
    without ``clip.json`` and ``DONE``), recorded when the outputs were verified;
    ``None`` in results written before it was recorded. ``seconds`` (wall),
    ``cpu_seconds`` (this process, all threads), ``host`` and ``pid`` describe the
    run and never go to the manifest; ``skipped`` is set when a finished result was
    reused.
    """

    dataset: str
    speaker_id: str
    utterance_id: str
    source: str
    transcript: str
    status: str
    reason: str = ""
    source_fps: float = 0.0
    source_duration: float = 0.0
    fps: float = 0.0
    segments: list[SegmentResult] = field(default_factory=list)
    files: dict[str, int] | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    host: str = ""
    pid: int = 0
    skipped: bool = False

    @property
    def key(self) -> str:
        """``speaker_id/utterance_id``."""
        return f"{self.speaker_id}/{self.utterance_id}"

    def to_json(self) -> str:
        """JSON text of every field."""
        return json.dumps(asdict(self), indent=1, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> ClipResult:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["segments"] = [SegmentResult(**s) for s in data.get("segments", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def rows(self, src_root: Path, options: PrepareOptions) -> list[dict[str, Any]]:
        """Manifest rows (see :data:`avatarlab.datasets.manifest.MANIFEST_SCHEMA`)."""
        split = split_of(self.speaker_id, options.val_fraction, options.test_fraction)
        base = {
            "dataset": self.dataset,
            "speaker_id": self.speaker_id,
            "utterance_id": self.utterance_id,
            "split": split,
            "source": _relative(self.source, src_root),
            "transcript": _relative(self.transcript, src_root) if self.transcript else "",
            "source_fps": round_figure(self.source_fps),
        }
        if not self.segments:
            status = "failed" if self.status == "failed" else "dropped"
            return [
                {
                    **base,
                    "segment": -1,
                    "status": status,
                    "reason": self.reason,
                    "start_s": 0.0,
                    "end_s": round_figure(self.source_duration),
                    "duration_s": 0.0,
                    "n_frames": 0,
                    "face_px": None,
                    "sharpness": None,
                    "max_yaw": None,
                    "max_pitch": None,
                    "output": "",
                }
            ]
        return [
            {
                **base,
                "segment": s.index,
                "status": s.status,
                "reason": s.reason,
                "start_s": round_figure(s.start),
                "end_s": round_figure(s.end),
                "duration_s": round_figure(s.n_frames / (self.fps or options.fps)),
                "n_frames": s.n_frames,
                "face_px": round_figure(s.face_px),
                "sharpness": round_figure(s.sharpness),
                "max_yaw": round_figure(s.max_yaw),
                "max_pitch": round_figure(s.max_pitch),
                "output": s.output,
            }
            for s in self.segments
        ]


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    if root.is_file():  # a single-video source
        return p.name
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def describe_error(err: BaseException) -> str:
    """One-line description of an error for the manifest.

    avatarlab's own errors already say what to do and are kept as they are; any
    other error gets its type and the place it was raised, for a bug report.
    """
    if isinstance(err, AvatarLabError):
        return str(err)
    where = ""
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return f"{type(err).__name__}: {err}{where}"


# -- sources ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Frames of a clip: a video file, or a folder of images (MAVD)."""

    path: Path
    fps: float
    duration: float
    has_audio: bool
    images: tuple[Path, ...] = ()
    image_times: tuple[float, ...] = ()

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """``(rgb uint8 (H, W, 3), t seconds)`` in presentation order."""
        from avatarlab.media import iter_frames, read_image

        if not self.images:
            yield from iter_frames(self.path)
            return
        for image, t in zip(self.images, self.image_times, strict=True):
            try:
                yield read_image(image), t  # refuses oversized pictures from their header
            except MediaError as err:
                raise MediaError(f"{err}: the image sequence is damaged") from None


_SEQUENCE_TIME = re.compile(r"^\d+_(\d+)_")


def _open_source(clip: Clip) -> _Source:
    """The clip's frames: a video, or an image sequence (time 0 = first image = audio start)."""
    if clip.path.is_dir():
        images = tuple(
            sorted(p for p in clip.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        )
        if not images:
            raise NoVideoError(f"{clip.path} holds no images: expected a frame sequence")
        stamps = [_SEQUENCE_TIME.match(p.name) for p in images]
        if all(stamps):  # MAVD: NNN_TTTTTTTTT_color.jpg, T in microseconds
            micro = np.array([int(m.group(1)) for m in stamps if m], dtype=np.float64)
            order = np.argsort(micro, kind="stable")
            images = tuple(images[i] for i in order)
            times = (micro[order] - micro[order[0]]) / 1e6
        else:
            times = np.arange(len(images)) / SEQUENCE_FPS
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1 / SEQUENCE_FPS
        return _Source(
            clip.path, 1 / step, float(times[-1] + step), False, images, tuple(times.tolist())
        )
    from avatarlab.media import probe

    info = probe(clip.path)
    if not info.has_video:
        raise NoVideoError(f"{clip.path} has no video stream: a talking-face clip needs frames")
    return _Source(clip.path, info.fps, info.duration, info.has_audio)


# -- pass 1: analysis ------------------------------------------------------------------------


@dataclass
class _Analysis:
    """Per source frame: time, shot cuts, face box / landmarks / pose, sharpness."""

    times: np.ndarray  # (N,) float64 seconds
    cuts: list[int]  # first frame index of each new shot
    found: np.ndarray  # (N,) bool
    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1 source pixels
    landmarks: np.ndarray  # (N, 478, 3) float32 source pixels
    pose: np.ndarray  # (N, 3) float32 yaw, pitch, roll degrees
    sharpness: np.ndarray  # (N,) float32 CPBD, NaN where not measured

    @property
    def frame_step(self) -> float:
        """Typical duration of one source frame, seconds."""
        if len(self.times) > 1:
            return float(np.median(np.diff(self.times)))
        return 1 / 25


def _analyse(source: _Source, options: PrepareOptions) -> tuple[_Analysis, list[np.ndarray] | None]:
    """Pass 1 over the frames; also returns the frames when they fit :data:`FRAME_CACHE_BYTES`."""
    from avatarlab.face.topology import NUM_MESH_POINTS
    from avatarlab.face.track import FaceTracker, SceneCutDetector, TrackerOptions

    times: list[float] = []
    cuts: list[int] = []
    states: list[Any] = []
    sharp: list[float] = []
    # The tracker re-acquires the face at (nearly) the same cuts that split the shots.
    tracker_options = TrackerOptions(cut_threshold=options.shot_threshold)
    is_cut = SceneCutDetector(options.shot_threshold)
    with_face = 0
    cache: list[np.ndarray] | None = []
    cached_bytes = 0
    with FaceTracker(tracker_options) as tracker:
        for i, (frame, t) in enumerate(source.frames()):
            if is_cut(_cut_thumbnail(frame)):
                cuts.append(i)
            if cache is not None:
                cached_bytes += frame.nbytes
                if cached_bytes <= FRAME_CACHE_BYTES:
                    cache.append(frame)
                else:
                    cache = None
            state = tracker.update(frame, t)
            times.append(t)
            states.append(state)
            value = math.nan
            if state is not None:
                if with_face % options.sharpness_every == 0:
                    value = face_sharpness(frame, state.box)
                with_face += 1
            sharp.append(value)
    if not times:
        raise MediaError(f"{source.path} has no frames: the file is empty or truncated")
    n = len(times)
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    marks = np.full((n, NUM_MESH_POINTS, 3), np.nan, dtype=np.float32)
    pose = np.full((n, 3), np.nan, dtype=np.float32)
    for i, state in enumerate(states):
        if state is not None:
            boxes[i] = state.box
            marks[i] = state.landmarks
            if state.pose is not None:
                pose[i] = state.pose.as_array()
    analysis = _Analysis(
        times=np.asarray(times, dtype=np.float64),
        cuts=cuts,
        found=np.array([s is not None for s in states], dtype=bool),
        boxes=boxes,
        landmarks=marks,
        pose=pose,
        sharpness=np.asarray(sharp, dtype=np.float32),
    )
    return analysis, cache


def _cut_thumbnail(frame: np.ndarray) -> np.ndarray:
    """A strided copy of ``frame`` about 128 px high: the cut detector shrinks it to
    32x32 anyway, and shrinking a full HD frame with INTER_AREA costs milliseconds."""
    step = max(1, min(frame.shape[0], frame.shape[1]) // 128)
    return np.ascontiguousarray(frame[::step, ::step])


def face_sharpness(frame: np.ndarray, box: np.ndarray) -> float:
    """CPBD sharpness (0 blurred .. 1 sharp) of the face in ``box``.

    Measured on a grey ``QUALITY_SIZE`` square crop (``QUALITY_SCALE`` times the
    box), so the figure does not depend on the output ``size``; faces smaller than
    the crop are upscaled and score as blurred as they will look in training.
    """
    from avatarlab.face.boxes import square_around
    from avatarlab.face.mesh import crop_square
    from avatarlab.metrics.cpbd import cpbd

    cx, cy, side = square_around(box, QUALITY_SCALE)
    crop, _ = crop_square(frame, cx, cy, side, QUALITY_SIZE)
    return float(cpbd(crop)[0])


# -- segmentation ------------------------------------------------------------------------------


@dataclass
class _Plan:
    result: SegmentResult
    first: int  # source frame range [first, last)
    last: int


def _frame_labels(analysis: _Analysis, options: PrepareOptions) -> np.ndarray:
    labels = np.full(len(analysis.times), _NO_FACE, dtype=np.int8)
    height = analysis.boxes[:, 3] - analysis.boxes[:, 1]
    with np.errstate(invalid="ignore"):
        big = height >= options.min_face
        turned = (np.abs(analysis.pose[:, 0]) > options.max_yaw) | (
            np.abs(analysis.pose[:, 1]) > options.max_pitch
        )
    found = analysis.found
    labels[found] = _SMALL
    labels[found & big] = _TURNED
    labels[found & big & ~turned] = _OK
    return labels


def _plan_segments(
    analysis: _Analysis, options: PrepareOptions, audio_seconds: float
) -> list[_Plan]:
    labels = _frame_labels(analysis, options)
    n = len(analysis.times)
    step = analysis.frame_step
    plans: list[_Plan] = []
    for shot_start, shot_end in shot_ranges(np.asarray(analysis.cuts), n):
        for run in runs(labels[shot_start:shot_end]):
            first, last = shot_start + run.start, shot_start + run.end
            start = float(analysis.times[first])
            end = float(analysis.times[last]) if last < n else float(analysis.times[-1]) + step
            end = min(end, audio_seconds)
            if end <= start:
                continue
            seg = SegmentResult(index=len(plans), start=start, end=end, status="dropped")
            _figures(seg, analysis, first, last)
            if run.label != _OK:
                seg.reason = _LABEL_REASON[run.label]
            elif end - start < max(options.min_duration, 1 / options.fps):
                seg.reason = REASON_SHORT
            elif seg.sharpness is None or seg.sharpness < options.min_sharpness:
                seg.reason = REASON_BLURRED
            else:
                seg.status = "kept"
            plans.append(_Plan(seg, first, last))
    return plans


def _figures(seg: SegmentResult, analysis: _Analysis, first: int, last: int) -> None:
    found = analysis.found[first:last]
    if not found.any():
        return
    boxes = analysis.boxes[first:last][found]
    pose = analysis.pose[first:last][found]
    seg.face_px = float(np.median(boxes[:, 3] - boxes[:, 1]))
    values = analysis.sharpness[first:last][found]
    values = values[np.isfinite(values)]
    if values.size:
        seg.sharpness = float(np.median(values))
    yaw, pitch = np.abs(pose[:, 0]), np.abs(pose[:, 1])
    if np.isfinite(yaw).any():
        seg.max_yaw = float(np.nanmax(yaw))
    if np.isfinite(pitch).any():
        seg.max_pitch = float(np.nanmax(pitch))


# -- pass 2: crops and outputs --------------------------------------------------------------------


@dataclass
class _Render:
    """Everything needed to write one kept segment."""

    folder: Path
    indices: np.ndarray  # (K,) source frame per output frame
    matrices: np.ndarray  # (K, 2, 3) source -> crop affine
    audio: np.ndarray  # (K * sample_rate / fps,) float32
    written: int = 0
    writer: Any = None


def _crop_matrices(boxes: np.ndarray, preset: Preset, size: int, window: int) -> np.ndarray:
    """``(K, 2, 3)`` source -> crop affines for face boxes ``(K, 4)`` of one segment.

    ``box`` crops follow the face (square centre and side smoothed over ``window``
    frames); ``fixed`` crops use one square covering every frame's square.
    """
    from avatarlab.face.boxes import square_around, square_crop_matrix

    squares = np.array([square_around(b, preset.scale) for b in boxes], dtype=np.float64)
    if preset.crop == "fixed":
        half = squares[:, 2:3] / 2
        lo = (squares[:, :2] - half).min(axis=0)
        hi = (squares[:, :2] + half).max(axis=0)
        centre = (lo + hi) / 2
        side = float((hi - lo).max())
        squares = np.tile([centre[0], centre[1], side], (len(boxes), 1))
    else:
        squares = smooth(squares, window)
    return np.stack([square_crop_matrix(cx, cy, side, size) for cx, cy, side in squares])


def _audio_samples(n_frames: int, options: PrepareOptions) -> int:
    """Audio samples that go with ``n_frames`` output frames."""
    return int(round(n_frames * options.sample_rate / options.fps))


def _segment_audio(
    audio: np.ndarray, start: float, n_frames: int, options: PrepareOptions
) -> np.ndarray:
    """Exactly ``n_frames / fps`` seconds of ``audio`` from ``start`` (zero-padded at the end)."""
    rate = options.sample_rate
    first = int(round(start * rate))
    count = _audio_samples(n_frames, options)
    chunk = audio[first : first + count]
    if len(chunk) < count:
        chunk = np.pad(chunk, (0, count - len(chunk)))
    return np.ascontiguousarray(chunk, dtype=np.float32)


def _render(
    source: _Source,
    cached: list[np.ndarray] | None,
    plans: list[_Plan],
    analysis: _Analysis,
    audio: np.ndarray,
    options: PrepareOptions,
    work: Path,
    rel: str,
) -> None:
    from avatarlab.media import write_audio

    preset = options.layout
    renders: list[_Render] = []
    for plan in plans:
        seg = plan.result
        if seg.status != "kept":
            continue
        times = analysis.times[plan.first : plan.last]
        local = select_frames(times, seg.start, seg.end, options.fps)
        indices = plan.first + local
        boxes = analysis.boxes[indices]
        matrices = _crop_matrices(boxes, preset, options.size, options.smooth)
        name = f"{seg.index:02d}"
        seg.n_frames = len(indices)
        seg.output = f"{rel}/{name}"
        folder = work / name
        folder.mkdir()
        render = _Render(
            folder, indices, matrices, _segment_audio(audio, seg.start, len(indices), options)
        )
        renders.append(render)
        _write_faces(render, analysis, options)
    if not renders:
        return
    wanted: dict[int, list[tuple[_Render, int]]] = {}
    for render in renders:
        for k, i in enumerate(render.indices.tolist()):
            wanted.setdefault(i, []).append((render, k))
    last_needed = max(wanted)
    frames = iter(cached) if cached is not None else (f for f, _ in source.frames())
    try:
        for i, frame in enumerate(frames):
            for render, k in wanted.get(i, ()):
                _write_frame(render, k, frame, options)
            if i >= last_needed:
                break
    except BaseException as exc:
        for render in renders:
            if render.writer is not None:  # abort: removes the partial mp4
                render.writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    for render in renders:
        if render.written != len(render.indices):
            raise MediaError(
                f"{source.path} gave fewer frames on the second read than on the first: "
                "the file changed or decodes inconsistently"
            )
        if preset.container == "frames":
            write_audio(render.folder / AUDIO_NAME, render.audio, options.sample_rate)


def _write_frame(render: _Render, k: int, frame: np.ndarray, options: PrepareOptions) -> None:
    """Crop output frame ``k`` of a segment from its source ``frame`` and store it."""
    from avatarlab.media import VideoWriter

    size = options.size
    crop = cv2.warpAffine(
        frame,
        render.matrices[k],
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
    )
    if options.layout.container == "frames":
        path = render.folder / f"{k}.jpg"
        quality = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]
        if not cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), quality):
            raise MediaError(f"could not write {path}: check free disk space")
    else:
        if render.writer is None:
            render.writer = VideoWriter(
                render.folder / VIDEO_NAME,
                options.fps,
                audio=render.audio,
                sample_rate=options.sample_rate,
            )
        render.writer.write(crop)
    render.written += 1
    if render.writer is not None and render.written == len(render.indices):
        render.writer.close()
        render.writer = None


def _write_faces(render: _Render, analysis: _Analysis, options: PrepareOptions) -> None:
    """Store the segment's per-output-frame face data as ``faces.npz`` (uncompressed).

    Keys (K output frames): ``landmarks`` float16 ``(K, 478, 3)`` in crop pixels
    (z in the same scale; float16 keeps 0.25 px below 512); ``crop_matrix`` float32
    ``(K, 2, 3)`` source -> crop affine (invert it for source pixels); ``box``
    float32 ``(K, 4)`` face box in source pixels; ``pose`` float32 ``(K, 3)`` yaw,
    pitch, roll degrees; ``source_time`` float64 ``(K,)``; ``source_index`` int64
    ``(K,)``; ``fps`` and ``size`` scalars.
    """
    from avatarlab.face.boxes import apply_affine

    idx = render.indices
    marks = analysis.landmarks[idx]
    in_crop = np.empty(marks.shape, dtype=np.float32)
    for k, m in enumerate(render.matrices):
        in_crop[k, :, :2] = apply_affine(m, marks[k, :, :2].astype(np.float64))
        in_crop[k, :, 2] = marks[k, :, 2] * m[0, 0]
    save_npz(
        render.folder / FACES_NAME,
        landmarks=in_crop.astype(np.float16),
        crop_matrix=render.matrices.astype(np.float32),
        box=analysis.boxes[idx],
        pose=analysis.pose[idx],
        source_time=analysis.times[idx],
        source_index=idx.astype(np.int64),
        fps=np.float64(options.fps),
        size=np.int64(options.size),
    )


def save_npz(path: Path, **arrays: np.ndarray | np.generic) -> None:
    """``np.savez`` with fixed entry dates, so the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


# -- one clip ------------------------------------------------------------------------------------


def _base_result(clip: Clip, status: str, reason: str = "") -> ClipResult:
    return ClipResult(
        dataset=clip.dataset,
        speaker_id=clip.speaker_id,
        utterance_id=clip.utterance_id,
        source=str(clip.path),
        transcript=str(clip.transcript_path) if clip.transcript_path else "",
        status=status,
        reason=reason,
    )


def _prepare(clip: Clip, options: PrepareOptions, work: Path) -> ClipResult:
    from avatarlab.media import read_audio

    source = _open_source(clip)
    result = _base_result(clip, "dropped")
    result.source_fps = source.fps
    result.source_duration = source.duration
    if clip.audio_path is None and not source.has_audio:
        result.reason = REASON_NO_AUDIO
        return result
    try:
        audio = read_audio(clip.audio_path or clip.path, sample_rate=options.sample_rate)
    except NoAudioError:
        result.reason = REASON_NO_AUDIO
        return result
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        result.reason = REASON_SILENT
        return result
    analysis, frames = _analyse(source, options)
    plans = _plan_segments(analysis, options, len(audio) / options.sample_rate)
    _render(source, frames, plans, analysis, audio, options, work, clip.key)
    result.segments = [p.result for p in plans]
    if any(s.status == "kept" for s in result.segments):
        result.status = "ok"
    else:
        reasons = sorted({s.reason for s in result.segments})
        result.reason = (
            f"{REASON_NO_SEGMENT} ({', '.join(reasons)})" if reasons else REASON_NO_SEGMENT
        )
    return result


def clip_folder(out_dir: str | os.PathLike[str], clip: Clip) -> Path:
    """The finished folder of ``clip`` below the output root."""
    return Path(out_dir) / clip.speaker_id / clip.utterance_id


def load_result(folder: Path, options: PrepareOptions | None = None) -> ClipResult | None:
    """The result stored in a finished clip folder, or None when it is not finished.

    A folder counts as finished only when it holds the ``DONE`` marker and exactly
    the files, with the sizes, that its result lists; results written before the
    listing was recorded are checked in full against ``options`` when given.
    """
    if not (folder / DONE_MARKER).is_file():
        return None
    try:
        result = ClipResult.from_json((folder / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    if result.files is None:
        if options is None:
            return result
        try:
            verify_outputs(folder, result, options)
        except MediaError:
            return None
        return result
    return result if _listing(folder) == result.files else None


def _listing(folder: Path) -> dict[str, int]:
    """Size of every file below ``folder`` (relative POSIX paths), without the result files."""
    sizes: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in (RESULT_NAME, DONE_MARKER):
            sizes[rel] = path.stat().st_size
    return sizes


def verify_outputs(folder: Path, result: ClipResult, options: PrepareOptions) -> dict[str, int]:
    """Check that ``folder`` holds exactly the outputs ``result`` describes; return the listing.

    Every kept segment must hold its ``n_frames`` frames (numbered JPEGs, or an MP4
    with that many frames), ``n_frames / fps`` seconds of audio (WAV, frames layout)
    and one ``faces.npz`` row per frame; nothing else may be there.

    Raises:
        MediaError: a file is missing, extra or incomplete (named in the message).
    """
    from avatarlab.media import probe

    kept = {f"{s.index:02d}": s.n_frames for s in result.segments if s.status == "kept"}
    listing = _listing(folder)
    frames_layout = options.layout.container == "frames"
    expected: set[str] = set()
    for name, n in kept.items():
        files = [f"{k}.jpg" for k in range(n)] + [AUDIO_NAME] if frames_layout else [VIDEO_NAME]
        expected.update(f"{name}/{f}" for f in [*files, FACES_NAME])
    problem = ""
    if set(listing) != expected:
        wrong = sorted(set(listing) ^ expected)
        problem = f"{len(wrong)} files missing or unexpected (first {wrong[0]})"
    else:
        for name, n in kept.items():
            seg = folder / name
            try:
                with np.load(seg / FACES_NAME) as faces:
                    rows = len(faces["source_index"])
                if frames_layout:
                    with wave.open(str(seg / AUDIO_NAME)) as wav:
                        samples = wav.getnframes()
                    count, want = samples, _audio_samples(n, options)
                else:
                    count, want = probe(seg / VIDEO_NAME).n_frames, n
            except (OSError, ValueError, KeyError, EOFError, wave.Error, MediaError) as err:
                problem = f"segment {name} is unreadable ({err})"
                break
            unit = "audio samples" if frames_layout else "video frames"
            if rows != n or count != want:
                problem = (
                    f"segment {name} has {rows} face rows for {n} frames, {count} of {want} {unit}"
                )
                break
    if problem:
        raise MediaError(f"{result.key}: the outputs are incomplete: {problem}")
    return listing


def prepare_clip(
    clip: Clip, options: PrepareOptions, out_dir: str | os.PathLike[str]
) -> ClipResult:
    """Prepare one clip into ``out_dir/SPEAKER/UTTERANCE/`` and return what happened.

    Idempotent: a finished clip (``DONE`` marker, files as listed) is not redone
    (unless it failed and ``options.retry_failed``). The clip is written in a work
    folder of this process and renamed into place once verified. Never raises for a
    bad clip: errors become a ``failed`` result.
    """
    final = clip_folder(out_dir, clip)
    previous = load_result(final, options)
    if previous is not None and not (options.retry_failed and previous.status == "failed"):
        previous.skipped = True
        return previous
    work = _fresh_work_folder(final)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        result = _prepare(clip, options, work)
        result.fps = options.fps
        result.files = verify_outputs(work, result, options)
    except Exception as err:  # a bad clip is recorded, never stops the run
        work = _fresh_work_folder(final)
        result = _base_result(clip, "failed", describe_error(err))
        result.fps = options.fps
        result.files = {}
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu
    return _commit(result, work, final)


def _fresh_work_folder(final: Path) -> Path:
    """An empty work folder ``.UTTERANCE.partial.PID`` of this process beside ``final``."""
    work = final.parent / f".{final.name}.partial.{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def _commit(result: ClipResult, work: Path, final: Path) -> ClipResult:
    """Write the result and the DONE marker into ``work``, then rename it to ``final``.

    A finished folder already at ``final`` (a retried or damaged clip) is first moved
    aside to ``.UTTERANCE.replaced.PID``, so ``final`` is always absent or whole.
    """
    result.host = socket.gethostname()
    result.pid = os.getpid()
    (work / RESULT_NAME).write_text(result.to_json(), encoding="utf-8")
    (work / DONE_MARKER).write_text("", encoding="utf-8")
    if final.exists():
        old = final.parent / f".{final.name}.replaced.{os.getpid()}"
        os.replace(final, old)
        os.replace(work, final)
        shutil.rmtree(old)
    else:
        os.replace(work, final)
    return result


def record_crash(args: tuple[Clip, PrepareOptions, Path], error: BaseException) -> ClipResult:
    """Record a clip whose worker process died as ``failed`` (called by the executors)."""
    clip, options, out_dir = args
    final = clip_folder(out_dir, clip)
    reason = (
        f"the worker process died on this clip ({type(error).__name__}: {error}); "
        "it crashes the decoder or exhausts memory: check the file with ffprobe"
    )
    result = _base_result(clip, "failed", reason)
    result.fps = options.fps
    result.files = {}
    return _commit(result, _fresh_work_folder(final), final)


def remove_leftovers(out: Path, clips: list[Clip]) -> None:
    """Delete what a killed run left in ``out``: clip work folders, folders being
    replaced, and the temporaries of the manifest, file lists and options file.

    Call only while holding the output lock (no live writer may own them).
    """
    remove_owned_temps(
        [
            out / MANIFEST_NAME,
            out / OPTIONS_NAME,
            *(out / FILELIST_DIR / f"{split}.txt" for split in SPLITS),
        ]
    )
    for parent in sorted({clip_folder(out, clip).parent for clip in clips}):
        if not parent.is_dir():
            continue
        for entry in os.scandir(parent):
            if _LEFTOVER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)


def check_output_options(out: Path, options: PrepareOptions) -> None:
    """Refuse to resume into ``out`` with options that change the clip outputs.

    The first run records :meth:`PrepareOptions.output_options` in
    ``out/prepare-options.json``; a later run must ask for the same ones, else its
    finished clips (skipped) and new ones would silently differ.

    Raises:
        OptionError: ``out`` was prepared with other options (named in the message).
        MediaError: the recorded file is unreadable.
    """
    path = out / OPTIONS_NAME
    wanted = options.output_options()
    if not path.is_file():
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MediaError(
            f"{path} is unreadable ({err}): use another output folder, or delete {out} to start over"
        ) from None
    differ = [k for k, v in wanted.items() if k in stored and stored[k] != v]
    if differ:
        was = ", ".join(f"{k}={stored[k]}" for k in differ)
        now = ", ".join(f"{k}={wanted[k]}" for k in differ)
        raise OptionError(
            f"{out} was prepared with {was} (this run asks for {now}); "
            "use another output folder or the same options"
        )


# -- a whole corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrepareSummary:
    """Outcome of :func:`prepare`.

    ``processed``: clips run now; ``skipped``: finished earlier; ``video_seconds``:
    source duration of the processed clips; ``wall_seconds``: time spent running
    them; ``cpu_seconds``: CPU time the workers spent on them (all threads);
    ``splits``: kept segments per split; ``problem``: empty when at least one
    segment was kept, else one line saying why nothing was produced (every clip
    failed, or every clip was dropped), for callers that must fail the run.
    """

    out_dir: Path
    clips: int
    processed: int
    skipped: int
    ok: int
    dropped: int
    failed: int
    kept_segments: int
    video_seconds: float
    wall_seconds: float
    cpu_seconds: float
    executor: str
    workers: int
    splits: dict[str, int]
    problem: str = ""

    @property
    def all_failed(self) -> bool:
        """Every clip of the corpus failed (none was prepared or dropped)."""
        return self.clips > 0 and self.failed == self.clips

    @property
    def clips_per_second(self) -> float:
        """Processed clips per wall-clock second."""
        return self.processed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of source video prepared per wall-clock second."""
        return self.video_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def prepare(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: PrepareOptions | None = None,
    *,
    dataset: str = "folder",
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> PrepareSummary:
    """Prepare every clip of the corpus at ``src`` into ``out``; see the module docstring.

    Args:
        src: corpus folder (or one video for ``dataset="folder"``).
        out: output root; created if needed; reusing it resumes an earlier run.
        options: what to produce (:class:`PrepareOptions`).
        dataset: reader name or card name (``"folder"``, ``"voxceleb2"``, ``"LRS2"``, ...).
        executor: ``"local"`` (process pool) or ``"ray"``.
        workers: processes / Ray CPUs; default: the cores of this machine.
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); ray only.

    Returns:
        A :class:`PrepareSummary`; details are in ``out/manifest.parquet``.

    Raises:
        MediaError: ``src`` is missing or holds no clips the reader recognises.
        OptionError: unknown reader or executor, inconsistent options, ``out`` is no
            usable folder, or ``out`` was prepared earlier with other output options.
    """
    options = options or PrepareOptions()
    if executor not in EXECUTORS:
        raise OptionError(
            f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS.names())}"
        )
    src_path = Path(src)
    out_path = make_output_folder(out, create=False)
    clips = read_clips(src_path, dataset)
    if not clips:
        raise MediaError(
            f"no clips found under {src_path} with the {dataset!r} reader: check the path, "
            "or pick the reader matching its layout (avatarlab datasets list)"
        )
    runner = get_executor(executor, workers, address)
    make_output_folder(out_path)
    with output_lock(out_path, "prepare"):
        remove_leftovers(out_path, clips)
        check_output_options(out_path, options)
        return _run(clips, runner, src_path, out_path, options, dataset)


def _run(
    clips: list[Clip],
    runner: Executor,
    src_path: Path,
    out_path: Path,
    options: PrepareOptions,
    dataset: str,
) -> PrepareSummary:
    """The body of :func:`prepare`, run while holding the output folder's lock."""
    results: dict[str, ClipResult] = {}
    todo: list[Clip] = []
    for clip in clips:
        previous = load_result(clip_folder(out_path, clip), options)
        if previous is not None and not (options.retry_failed and previous.status == "failed"):
            previous.skipped = True
            results[clip.key] = previous
        else:
            todo.append(clip)
    began = datetime.now(UTC)
    started = time.perf_counter()
    jobs = ((clip, options, out_path) for clip in todo)
    for result in track_progress(
        runner.imap_unordered(prepare_clip, jobs, on_crash=record_crash),
        "prepare (clips)",
        total=len(todo),
    ):
        results[result.key] = result
    wall = time.perf_counter() - started
    ordered = [results[clip.key] for clip in clips]
    rows = [row for r in ordered for row in r.rows(src_path, options)]
    table = write_manifest(rows, out_path / MANIFEST_NAME)
    splits = write_filelists(table, out_path)
    processed = [r for r in ordered if not r.skipped]
    kept = sum(s.status == "kept" for r in ordered for s in r.segments)
    summary = PrepareSummary(
        out_dir=out_path,
        clips=len(clips),
        processed=len(processed),
        skipped=len(clips) - len(processed),
        ok=sum(r.status == "ok" for r in ordered),
        dropped=sum(r.status == "dropped" for r in ordered),
        failed=sum(r.status == "failed" for r in ordered),
        kept_segments=kept,
        video_seconds=sum(r.source_duration for r in processed),
        wall_seconds=wall,
        cpu_seconds=sum(r.cpu_seconds for r in processed),
        executor=runner.name,
        workers=runner.workers,
        splits=splits,
        problem="" if kept else _nothing_produced(ordered),
    )
    _append_run_log(out_path, summary, began, processed, str(src_path), dataset, options)
    return summary


def _nothing_produced(results: list[ClipResult]) -> str:
    """One line saying why no clip of ``results`` gave a kept segment."""
    failed = [r for r in results if r.status == "failed"]
    if len(failed) == len(results):
        first = failed[0]
        return f"every clip failed ({len(failed)} of {len(failed)}); first: {first.key}: {first.reason}"
    reasons: dict[str, int] = {}
    for r in results:
        if r.status != "failed":
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
    why = ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items()))
    return (
        f"no clip gave a usable segment: {len(results) - len(failed)} dropped ({why}), "
        f"{len(failed)} failed"
    )


def _append_run_log(
    out: Path,
    summary: PrepareSummary,
    began: datetime,
    processed: list[ClipResult],
    src: str,
    dataset: str,
    options: PrepareOptions,
) -> None:
    entry = {
        "started": began.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "source": src,
        "dataset": dataset,
        "executor": summary.executor,
        "workers": summary.workers,
        "options": asdict(options),
        "clips": summary.clips,
        "processed": summary.processed,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "wall_seconds": round(summary.wall_seconds, 3),
        "cpu_seconds": round(summary.cpu_seconds, 3),
        "video_seconds": round(summary.video_seconds, 3),
        "clips_per_second": round(summary.clips_per_second, 4),
        "realtime_factor": round(summary.realtime_factor, 3),
        "per_clip": [
            {
                "key": r.key,
                "status": r.status,
                "seconds": round(r.seconds, 3),
                "cpu_seconds": round(r.cpu_seconds, 3),
                "host": r.host,
                "pid": r.pid,
            }
            for r in processed
        ],
    }
    line = (json.dumps(entry) + "\n").encode("utf-8")
    fd = os.open(out / RUN_LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)  # one write: a killed run never leaves half a line
    finally:
        os.close(fd)
