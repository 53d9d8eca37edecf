"""Body pose tasks: ``pose`` (keypoint files, skeleton renders, person masks) and ``pose_align``.

``pose(inputs, out, options)`` runs ``avatarlab.body.PoseEstimator`` over images,
folders and videos and writes, under ``out``:

- ``json/<name>_<frame:012d>_keypoints.json``: OpenPose JSON (formats
  "openpose" = BODY_25 and "coco" = COCO-18), one file per frame;
- ``dwpose/<name>.npz`` and ``dwpose/<name>.json``: the DWPose/MusePose layout
  (format "dwpose");
- ``skeleton/<name>.mp4`` (videos, at the source's size and fps) and/or
  ``skeleton/<name>_<frame:012d>.png`` (images, or ``render_format`` "png"): the
  ControlNet/DWPose skeleton (render "skeleton") or the skeleton over the
  frame (render "overlay");
- ``masks/<name>.mp4`` (a greyscale matte video: H.264 has no alpha channel,
  white = person) or ``masks/<name>_<frame:012d>.png`` (8-bit grey);
- ``summary.json``: per input the frame count, the frames with nobody and notes.

Everything is written to a staging folder inside ``out`` and moved into place
when the whole run succeeded, so a failed run leaves no partial outputs.
Frames with nobody are recorded (``people: []``) and listed, never errors.

Module-level imports are light: the CLI builds its flags from the options.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from avatarlab._util import check_crf, make_output_folder, track_progress
from avatarlab.errors import MediaError, OptionError, describe_frames

if TYPE_CHECKING:
    import numpy as np

    from avatarlab.body import FramePose

PoseFormat = Literal["openpose", "dwpose", "coco"]
Render = Literal["skeleton", "overlay", "none"]
RenderFormat = Literal["mp4", "png", "both"]
MaskOutput = Literal["none", "png", "video"]

TINY_PERSON = 0.1
"""A person whose body box is under this fraction of the frame height gets a note (unreliable keypoints)."""

INFERENCE_NOTE_SIDE = 1280


def _check_choice(name: str, value: object, kind: object) -> None:
    choices = get_args(kind)
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


@dataclass(frozen=True)
class PoseOptions:
    """``avatarlab pose``: what to find and what to write.

    Attributes:
        format: keypoint files: openpose (BODY_25 JSON per frame), coco (COCO-18 JSON per frame) or dwpose (DWPose/MusePose .npz + .json).
        hands: also find both hands (OpenPose 21-point layout).
        face: also find the face (OpenPose 70-point layout: 68 iBUG points + 2 pupils).
        render: skeleton (ControlNet/DWPose colours on black), overlay (skeleton over the frame) or none.
        render_format: for videos: mp4, png (one PNG per frame) or both; images always give a PNG.
        smooth: One-Euro smoothing of keypoints over time (videos).
        min_confidence: keypoints whose MediaPipe visibility is below this are written as missing (zeros).
        max_people: most people per frame; above 1, people are found from their faces and followed with stable ids.
        mask: person masks: none, png (8-bit grey per frame) or video (greyscale matte MP4).
        crf: x264 quality of the MP4 outputs (0 lossless .. 51 worst).
    """

    format: PoseFormat = "openpose"
    hands: bool = False
    face: bool = False
    render: Render = "skeleton"
    render_format: RenderFormat = "mp4"
    smooth: bool = False
    min_confidence: float = 0.5
    max_people: int = 1
    mask: MaskOutput = "none"
    crf: int = 18

    def __post_init__(self) -> None:
        _check_choice("format", self.format, PoseFormat)
        _check_choice("render", self.render, Render)
        _check_choice("render_format", self.render_format, RenderFormat)
        _check_choice("mask", self.mask, MaskOutput)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise OptionError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not 1 <= self.max_people <= 16:
            raise OptionError(f"max_people must be between 1 and 16, got {self.max_people}")
        check_crf(self.crf)


@dataclass(frozen=True)
class PoseAlignOptions:
    """``avatarlab pose align``: rescale a driving pose video to a reference photo's proportions.

    Attributes:
        align_frame: driving frame whose proportions are matched to the reference (the first usable one from here on).
        hands: also align both hands.
        face: also align the 70-point face.
        smooth: One-Euro smoothing of the driving keypoints before alignment.
        min_confidence: keypoints whose MediaPipe visibility is below this are missing.
        render: skeleton (aligned skeleton video at the reference's size) or none.
        crf: x264 quality of the skeleton video (0 lossless .. 51 worst).
    """

    align_frame: int = 0
    hands: bool = True
    face: bool = True
    smooth: bool = True
    min_confidence: float = 0.5
    render: Literal["skeleton", "none"] = "skeleton"
    crf: int = 18

    def __post_init__(self) -> None:
        if self.align_frame < 0:
            raise OptionError(f"align_frame must be >= 0, got {self.align_frame}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise OptionError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        _check_choice("render", self.render, Literal["skeleton", "none"])
        check_crf(self.crf)


@dataclass(frozen=True)
class InputPose:
    """What ``pose`` found in one input file.

    frames: frames read; empty_frames: indices of frames with nobody;
    most_people: most people in one frame; frame_size: source (W, H);
    fps: source rate (0 for images); notes: human-readable remarks;
    person_ids: every id given (with ``max_people > 1``; stable across gaps and crossings).
    """

    path: Path
    frames: int
    empty_frames: list[int]
    most_people: int
    frame_size: tuple[int, int]
    fps: float
    notes: list[str] = field(default_factory=list)
    person_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "frames": self.frames,
            "empty_frames": self.empty_frames,
            "most_people": self.most_people,
            "frame_size": list(self.frame_size),
            "fps": self.fps,
            "notes": self.notes,
            "person_ids": self.person_ids,
        }


@dataclass(frozen=True)
class PoseResult:
    """Outputs of one ``pose`` run: per-input summaries and every file written."""

    out: Path
    inputs: list[InputPose]
    outputs: list[Path]
    #: Inputs that could not be read or posed, with the one-line reason (no outputs).
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def describe(self) -> list[str]:
        """One line per input, then its notes; failed inputs last."""
        lines = []
        for item in self.inputs:
            lines.append(
                f"{item.path.name}: {item.frames} frame(s), up to {item.most_people} person(s), "
                f"nobody in {len(item.empty_frames)}"
            )
            lines.extend(f"  {n}" for n in item.notes)
        lines.extend(f"{path.name}: failed: {why}" for path, why in self.failed)
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (what ``summary.json`` and ``--json`` print)."""
        return {
            "out": str(self.out),
            "inputs": [i.to_dict() for i in self.inputs],
            "failed": [{"path": str(p), "error": why} for p, why in self.failed],
            "outputs": [str(p) for p in self.outputs],
        }


@dataclass(frozen=True)
class AlignResult:
    """Outputs of ``pose_align``: scales per body part, the frame they came from, files written."""

    out: Path
    scales: dict[str, float]
    measured: tuple[str, ...]
    align_frame: int
    frames: int
    empty_frames: list[int]
    outputs: list[Path]
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in self.scales.items())
        lines = [f"aligned {self.frames} frame(s) on frame {self.align_frame}: {parts}"]
        return lines + self.notes


class _Staging:
    """A hidden folder inside ``out`` whose files move into ``out`` on success."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = Path(tempfile.mkdtemp(prefix=".pose-", dir=out))
        self.files: list[Path] = []

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(Path(rel))
        return p

    def mark(self) -> int:
        """A point to :meth:`drop_since` (the number of files staged so far)."""
        return len(self.files)

    def drop_since(self, mark: int) -> None:
        """Forget and delete the files staged after ``mark`` (an input that failed)."""
        for rel in self.files[mark:]:
            (self.root / rel).unlink(missing_ok=True)
        del self.files[mark:]

    @staticmethod
    def remove_leftovers(out: Path) -> None:
        """Delete staging folders of killed runs (call under the folder's output lock)."""
        for old in out.glob(".pose-*"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def commit(self) -> list[Path]:
        final = []
        for rel in self.files:
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / rel, target)
            final.append(target)
        shutil.rmtree(self.root, ignore_errors=True)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _media(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    from avatarlab.media.files import find_media

    files = find_media(inputs)
    if not files:
        raise MediaError(
            "no images or videos found in the inputs: pass image/video files or folders"
        )
    names = [f.stem for f in files]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise OptionError(
            f"several inputs share the name {clash[0]!r} (outputs are named after the file): "
            "rename them or run them separately"
        )
    return files


def _frames(path: Path) -> tuple[Iterator[tuple[np.ndarray, float]], float, int, bool]:
    """Frames of ``path`` with timestamps, its fps (0 for images), frame count and whether it is an image."""
    from avatarlab.media import iter_frames, probe

    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path} has no picture: pass an image or a video")
    return iter_frames(path), info.fps, info.n_frames, info.is_image


def pose(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: PoseOptions | None = None,
) -> PoseResult:
    """Find body (and optionally hand and face) keypoints in every input; write files under ``out``."""
    from avatarlab._outdir import output_lock
    from avatarlab.errors import AvatarLabError

    options = options or PoseOptions()
    files = _media(inputs)
    root = make_output_folder(out)
    with output_lock(root, "pose"):
        _Staging.remove_leftovers(root)
        stage = _Staging(root)
        try:
            summaries: list[InputPose] = []
            failed: list[tuple[Path, str]] = []
            for path in files:  # one unreadable input is recorded; the others go on
                mark = stage.mark()
                try:
                    summaries.append(_pose_one(path, stage, options))
                except AvatarLabError as err:
                    stage.drop_since(mark)
                    failed.append((path, str(err)))
            if not summaries:
                reasons = "; ".join(f"{p.name}: {why}" for p, why in failed)
                raise MediaError(f"no input could be posed ({reasons})")
            staged = PoseResult(root, summaries, [], failed).to_dict()
            summary = stage.path("summary.json")
            summary.write_text(
                json.dumps({"inputs": staged["inputs"], "failed": staged["failed"]}, indent=1)
            )
            written = stage.commit()
        except BaseException:
            stage.abort()
            raise
    return PoseResult(root, summaries, written, failed)


def _estimator_options(
    options: PoseOptions | PoseAlignOptions, static: bool, max_people: int = 1
) -> Any:
    from avatarlab.body import EstimatorOptions

    return EstimatorOptions(
        hands=options.hands,
        face=options.face,
        smooth=options.smooth and not static,
        min_confidence=options.min_confidence,
        max_people=max_people,
        static=static,
    )


def _pose_one(path: Path, stage: _Staging, options: PoseOptions) -> InputPose:
    import numpy as np

    from avatarlab.body import (
        PersonSegmenter,
        PoseEstimator,
        draw_pose,
        openpose_filename,
        overlay,
        write_dwpose,
        write_openpose,
    )
    from avatarlab.body.masks import mask_to_uint8, write_mask_png
    from avatarlab.media import VideoWriter
    from avatarlab.media.files import write_image

    frames, fps, total, is_image = _frames(path)
    name = path.stem
    png = is_image or options.render_format in ("png", "both")
    mp4 = not is_image and options.render_format in ("mp4", "both")
    layout: Literal["body25", "coco18"] = "coco18" if options.format == "coco" else "body25"
    poses: list[FramePose] = []
    empty: list[int] = []
    ids: set[int] = set()
    count = most = tiny = 0
    size = (0, 0)
    with contextlib.ExitStack() as stack:
        render = None
        if options.render != "none" and mp4:
            render = stack.enter_context(
                VideoWriter(stage.path(f"skeleton/{name}.mp4"), fps, crf=options.crf)
            )
        matte = None
        if options.mask == "video" and not is_image:
            matte = stack.enter_context(
                VideoWriter(stage.path(f"masks/{name}.mp4"), fps, crf=options.crf)
            )
        segmenter = stack.enter_context(PersonSegmenter()) if options.mask != "none" else None
        est = stack.enter_context(
            PoseEstimator(_estimator_options(options, is_image, options.max_people))
        )
        for frame, t in track_progress(frames, f"pose {path.name}", total=total or None):
            fp = est.update(frame, t)
            count += 1
            size = fp.frame_size
            most = max(most, len(fp.people))
            ids.update(p.id for p in fp.people)
            if fp.empty:
                empty.append(fp.index)
            tiny += any(p.box[3] - p.box[1] < TINY_PERSON * size[1] for p in fp.people)
            if options.format == "dwpose":
                poses.append(fp)
            else:
                target = stage.path(f"json/{openpose_filename(name, fp.index)}")
                write_openpose(target, fp, layout, ids=options.max_people > 1)
            if options.render != "none":
                canvas = draw_pose(fp, options.hands, options.face)
                if options.render == "overlay":
                    canvas = overlay(frame, canvas)
                if render is not None:
                    render.write(canvas)
                if png:
                    write_image(stage.path(f"skeleton/{name}_{fp.index:012d}.png"), canvas)
            if segmenter is not None:
                mask = segmenter.mask(frame)
                if matte is not None:
                    matte.write(np.repeat(mask_to_uint8(mask)[..., None], 3, axis=2))
                else:
                    write_mask_png(stage.path(f"masks/{name}_{fp.index:012d}.png"), mask)
    if options.format == "dwpose":
        write_dwpose(stage.path(f"dwpose/{name}.npz"), stage.path(f"dwpose/{name}.json"), poses)
    notes = _notes(empty, count, tiny, size, options)
    person_ids = sorted(ids) if options.max_people > 1 else []
    return InputPose(path, count, empty, most, size, 0.0 if is_image else fps, notes, person_ids)


def _notes(
    empty: list[int], frames: int, tiny: int, size: tuple[int, int], options: PoseOptions
) -> list[str]:
    notes = []
    if empty:
        notes.append(
            f"nobody found in {len(empty)} of {frames} frame(s): {describe_frames(empty)} "
            "(written as people: [])"
        )
    if tiny:
        notes.append(
            f"{tiny} frame(s) show a person under {TINY_PERSON:.0%} of the frame height: "
            "keypoints are unreliable at that size"
        )
    if max(size) > INFERENCE_NOTE_SIDE:
        notes.append(
            f"the {size[0]}x{size[1]} frames were downscaled to {INFERENCE_NOTE_SIDE} px for the "
            "pose model; coordinates are in source pixels"
        )
    if options.max_people == 1:
        notes.append("single-person mode: MediaPipe's pose model reports the main person only")
    return notes


def _estimate_all(path: Path, options: PoseAlignOptions) -> tuple[list[FramePose], float, bool]:
    from avatarlab.body import PoseEstimator

    frames, fps, total, is_image = _frames(path)
    with PoseEstimator(_estimator_options(options, is_image)) as est:
        poses = [
            est.update(frame, t)
            for frame, t in track_progress(frames, f"pose {path.name}", total=total or None)
        ]
    return poses, fps, is_image


def pose_align(
    reference: str | os.PathLike[str],
    driving: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: PoseAlignOptions | None = None,
) -> AlignResult:
    """Rescale the driving video's poses to the reference image's body proportions (MusePose's pose_align).

    Writes ``json/<driving>_aligned_<frame:012d>_keypoints.json`` (OpenPose
    BODY_25 in the reference image's pixels), ``<driving>_aligned.mp4`` (the
    aligned skeleton at the reference's size and the driving fps) and
    ``align.json`` (scales per body part, alignment frame, frames with nobody).

    Raises:
        NoPersonError: nobody in the reference, or no driving frame with a person.
    """
    from avatarlab.body import align_sequence

    options = options or PoseAlignOptions()
    ref_path, drv_path = Path(reference), Path(driving)
    root = make_output_folder(out)
    ref_poses, _, ref_is_image = _estimate_all(ref_path, options)
    notes = (
        [] if ref_is_image else [f"{ref_path.name} is a video: its first frame is the reference"]
    )
    drv_poses, fps, drv_is_image = _estimate_all(drv_path, options)
    if drv_is_image:
        fps = 0.0
    scales, aligned, used = align_sequence(ref_poses[0], drv_poses, options.align_frame)
    empty = [f.index for f in aligned if f.empty]
    if empty:
        notes.append(
            f"nobody found in {len(empty)} of {len(aligned)} driving frame(s): "
            f"{describe_frames(empty)} (written as people: [])"
        )
    if used != options.align_frame:
        notes.append(f"frame {options.align_frame} shows no usable person: aligned on frame {used}")
    name = f"{drv_path.stem}_aligned"
    from avatarlab._outdir import output_lock

    with output_lock(root, "pose align"):
        _Staging.remove_leftovers(root)
        written = _write_aligned(
            root,
            name,
            aligned,
            fps,
            options,
            {
                "reference": str(ref_path),
                "driving": str(drv_path),
                "align_frame": used,
                "scales": scales.scales,
                "measured": list(scales.measured),
                "offset": [float(v) for v in scales.offset],
                "empty_frames": empty,
                "notes": notes,
            },
        )
    return AlignResult(
        root, scales.scales, scales.measured, used, len(aligned), empty, written, notes
    )


def _write_aligned(
    root: Path,
    name: str,
    aligned: list[FramePose],
    fps: float,
    options: PoseAlignOptions,
    report: dict[str, Any],
) -> list[Path]:
    """Stage and commit the aligned keypoint files, skeleton video and ``align.json``."""
    from avatarlab.body import draw_pose, openpose_filename, write_openpose
    from avatarlab.media import VideoWriter

    stage = _Staging(root)
    try:
        for fp in aligned:
            write_openpose(stage.path(f"json/{openpose_filename(name, fp.index)}"), fp)
        if options.render == "skeleton":
            with VideoWriter(stage.path(f"{name}.mp4"), fps or 25.0, crf=options.crf) as writer:
                for fp in aligned:
                    writer.write(draw_pose(fp, options.hands, options.face))
        stage.path("align.json").write_text(json.dumps(report, indent=1))
        return stage.commit()
    except BaseException:
        stage.abort()
        raise
