"""Whole-file face tasks: media summaries (``info``), face tracks (``faces``), batch crops.

These sequence the face and media building blocks over files and folders; the
CLI only parses arguments and prints what these return. Module-level imports are
light (the CLI builds its ``crop`` flags from :class:`CropOptions`); the face and
media stacks are imported when a task runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from avatarlab._util import atomic_output, make_output_folder, track_progress
from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import AvatarLabError, MediaError, OptionError, describe_frames
from avatarlab.tasks._output import check_output_file

if TYPE_CHECKING:
    import numpy as np

    from avatarlab.media import MediaInfo

_INFO_SAMPLES = 5  # frames sampled across a video to count faces in `info`
MAX_CROP_SIZE = 4096  # pixels; larger crops only upsample and exhaust memory


@dataclass(frozen=True)
class MediaSummary:
    """``avatarlab info``: the streams of a file and how many faces it shows."""

    info: MediaInfo
    faces: int  # most faces seen in one sampled frame
    frames_sampled: int
    frames_with_face: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self.info)
        d["path"] = str(self.info.path)
        d.update(
            faces=self.faces,
            frames_sampled=self.frames_sampled,
            frames_with_face=self.frames_with_face,
        )
        return d


def summarize_media(path: str | os.PathLike[str], detector: str = "auto") -> MediaSummary:
    """Probe ``path`` and count faces on a few frames spread over its duration."""
    from avatarlab.face.detect import FaceDetector
    from avatarlab.media import probe

    info = probe(path)
    if not info.has_video:
        return MediaSummary(info, faces=0, frames_sampled=0, frames_with_face=0)
    det = FaceDetector(detector)  # type: ignore[arg-type]
    counts = [len(det.detect(frame)) for frame in _sample_frames(info, _INFO_SAMPLES)]
    return MediaSummary(
        info,
        faces=max(counts, default=0),
        frames_sampled=len(counts),
        frames_with_face=sum(c > 0 for c in counts),
    )


def _sample_frames(info: MediaInfo, n: int) -> Iterator[np.ndarray]:
    """Up to ``n`` frames evenly spread over a video (the image itself for stills)."""
    import numpy as np

    from avatarlab.media import iter_frames, read_image

    if info.is_image:
        yield read_image(info.path)
        return
    total = max(info.n_frames, 1)
    wanted = set(np.linspace(0, total - 1, min(n, total)).round().astype(int).tolist())
    for i, (frame, _t) in enumerate(iter_frames(info.path)):
        if i in wanted:
            yield frame
            wanted.discard(i)
            if not wanted:
                return


@dataclass(frozen=True)
class CropOptions:
    """Options of the batch face-crop task (``avatarlab crop``).

    Attributes:
        size: side of the square crops in pixels.
        margin: context around the detected face box, as a fraction of the box side on
            each side.
        every: take every N-th frame of videos.
        all_faces: crop every face, not only the largest.
        image_format: file format of the crops.
        detector: face detector model: ``auto``, ``short`` (near faces) or ``full``.
        min_score: smallest detection confidence kept (0..1).
    """

    size: int = 512
    margin: float = 0.4
    every: int = 1
    all_faces: bool = False
    image_format: Literal["jpg", "png"] = "jpg"
    detector: str = "auto"
    min_score: float = 0.5

    def __post_init__(self) -> None:
        if not 16 <= self.size <= MAX_CROP_SIZE:
            raise OptionError(f"crop size must be 16..{MAX_CROP_SIZE} pixels, got {self.size}")
        if self.margin < 0:
            raise OptionError(f"margin must be >= 0, got {self.margin}")
        if self.every < 1:
            raise OptionError(f"every must be >= 1, got {self.every}")
        if self.image_format not in ("jpg", "png"):
            raise OptionError(f"image format must be jpg or png, got {self.image_format!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise OptionError(f"min_score must be in 0..1, got {self.min_score}")
        from avatarlab.face.detect import DetectorModel

        if self.detector not in get_args(DetectorModel):
            models = ", ".join(get_args(DetectorModel))
            raise OptionError(f"detector must be one of {models}, got {self.detector!r}")


@dataclass
class CropReport:
    """What a crop job wrote, which inputs showed no face, and which failed."""

    written: list[Path] = field(default_factory=list)
    no_face: dict[str, str] = field(default_factory=dict)  # file -> frames without a face
    failed: dict[str, str] = field(default_factory=dict)  # file -> error message

    def to_dict(self) -> dict[str, Any]:
        return {
            "written": [str(p) for p in self.written],
            "no_face": self.no_face,
            "failed": self.failed,
        }


def crop_faces(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: CropOptions | None = None,
) -> CropReport:
    """Write square face crops of every image and (sampled) video frame in ``inputs``.

    Folders are searched recursively. A file that cannot be read or cropped is
    recorded in the report and the job carries on; ``report.json`` in ``out_dir``
    lists the files written, the inputs (and frames) without a face, and the failures.

    Raises:
        MediaError: an input does not exist, or no image or video was found in them.
        OptionError: ``out_dir`` is a file or cannot be created (checked first).
    """
    from avatarlab.face.align import crop_box
    from avatarlab.face.detect import FaceDetector
    from avatarlab.media import is_image_path
    from avatarlab.media.files import find_media, write_image

    options = options or CropOptions()
    out = make_output_folder(out_dir, create=False)
    files = find_media(inputs)
    if not files:
        raise MediaError(
            f"no images or videos found in {', '.join(map(str, inputs))}: "
            "pass image or video files, or folders that hold them"
        )
    make_output_folder(out)
    det = FaceDetector(options.detector, options.min_score)  # type: ignore[arg-type]
    report = CropReport()
    used: set[Path] = set()  # names written by this run: inputs may share a file name
    for path in track_progress(files, "cropping faces", total=len(files)):
        try:
            missing: list[int] = []
            for idx, frame in _frames_of(path, options.every):
                faces = det.detect(frame)
                if not faces:
                    missing.append(idx)
                    continue
                for k, face in enumerate(faces if options.all_faces else faces[:1]):
                    crop = crop_box(frame, face.box, options.size, options.margin)
                    target = _unique(out / _crop_name(path, idx, k, options), used)
                    write_image(target, crop)
                    report.written.append(target)
            if missing:
                report.no_face[str(path)] = (
                    "no face" if is_image_path(path) else f"frames {describe_frames(missing)}"
                )
        except AvatarLabError as err:
            report.failed[str(path)] = str(err).strip()
        except Exception as err:  # one bad file (decoder, codec, OpenCV) must not stop a batch
            report.failed[str(path)] = f"{type(err).__name__}: {str(err).strip()}"
    with atomic_output(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2))
    return report


def _frames_of(path: Path, every: int) -> Iterator[tuple[int, np.ndarray]]:
    from avatarlab.media import is_image_path, iter_frames, read_image

    if is_image_path(path):
        yield 0, read_image(path)
        return
    for i, (frame, _t) in enumerate(iter_frames(path)):
        if i % every == 0:
            yield i, frame


def _unique(target: Path, used: set[Path]) -> Path:
    """``target``, or ``stem_2``, ``stem_3``... when this run already wrote that name."""
    candidate, n = target, 2
    while candidate in used:
        candidate, n = target.with_name(f"{target.stem}_{n}{target.suffix}"), n + 1
    used.add(candidate)
    return candidate


def _crop_name(path: Path, idx: int, k: int, options: CropOptions) -> str:
    from avatarlab.media import is_image_path

    stem = path.stem if is_image_path(path) else f"{path.stem}_{idx:06d}"
    return f"{stem}{f'_face{k}' if k else ''}.{options.image_format}"


@dataclass(frozen=True)
class FacesResult:
    """What ``analyze_faces`` found: frame counts and the frames without a face."""

    n_frames: int
    frames_with_face: int
    missing: str  # compact frame ranges without a face ("" when none)
    json_path: Path
    preview_path: Path | None


def analyze_faces(
    media: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    annotate: str | os.PathLike[str] | None = None,
) -> FacesResult:
    """Analyse the faces of an image or track the main face of a video; write JSON.

    One JSON layout for both (``avatarlab.Faces/2``): ``frames``, each with ``index``,
    ``time`` (s) and ``faces`` (box, score, pose in degrees, 68 iBUG points, 478-point
    mesh; pixels rounded to 0.01). An image is one frame with every face; a video has
    every frame with the tracked person (``faces`` empty where no face was found).
    ``annotate`` writes a preview (image, or MP4 with the source audio).
    Both outputs are checked before any analysis, and the JSON appears only once the
    preview is written too: on any failure neither is left behind.

    Raises:
        NoFaceError: no frame shows a face. OptionError: an output cannot be written.
    """

    from avatarlab.errors import NoFaceError
    from avatarlab.media import probe

    info = probe(media)
    if not info.has_video:
        from avatarlab.errors import NoVideoError

        raise NoVideoError(f"{media} has no pictures: pass an image or a video")
    check_output_file(out_json)
    if annotate is not None:  # fail before any analysis, and before the JSON is written
        from avatarlab.media.files import check_image_output
        from avatarlab.media.writer import check_video_output

        (check_image_output if info.is_image else check_video_output)(annotate)
        check_output_file(annotate)
    if info.is_image:
        return _analyze_still(info, Path(out_json), annotate)
    from avatarlab.face.track import track_video

    track = track_video(media)
    if not track.found.any():
        raise NoFaceError(
            f"no face found in any of the {len(track)} frames of {media}: "
            "use a video where a face is visible",
            track.missing_frames,
        )
    from avatarlab.face.analyze import FACES_FORMAT, face_record
    from avatarlab.face.pose import HeadPose

    lm68 = track.landmarks68()
    frames = []
    for i, t in enumerate(track.timestamps):
        faces = []
        if track.found[i]:
            pose = HeadPose(*(float(v) for v in track.pose[i]))
            faces.append(face_record(track.boxes[i], None, pose, lm68[i], track.landmarks[i]))
        frames.append({"index": i, "time": round(float(t), 6), "faces": faces})
    data = {
        "format": FACES_FORMAT,
        "source": str(info.path),
        "kind": "video",
        "frame_size": list(track.frame_size),
        "fps": round(float(info.fps), 6),
        "frames": frames,
    }
    with atomic_output(out_json) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        if annotate is not None:
            _annotate_video(info, track, Path(annotate))
    return FacesResult(
        n_frames=len(track),
        frames_with_face=int(track.found.sum()),
        missing=describe_frames(track.missing_frames) if track.missing_frames else "",
        json_path=Path(out_json),
        preview_path=None if annotate is None else Path(annotate),
    )


def _analyze_still(info: MediaInfo, out_json: Path, annotate: Any) -> FacesResult:
    from avatarlab.errors import NoFaceError
    from avatarlab.face.analyze import analyze_image
    from avatarlab.face.draw import draw_faces
    from avatarlab.media import read_image
    from avatarlab.media.files import write_image

    image = read_image(info.path)
    found = analyze_image(image)
    if not found:
        raise NoFaceError(
            f"no face found in {info.path}: use an image where a face is clearly visible"
        )
    from avatarlab.face.analyze import FACES_FORMAT

    data = {
        "format": FACES_FORMAT,
        "source": str(info.path),
        "kind": "image",
        "frame_size": [info.width, info.height],
        "fps": None,
        "frames": [{"index": 0, "time": 0.0, "faces": [face.to_dict() for face in found]}],
    }
    with atomic_output(out_json) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        if annotate is not None:
            write_image(annotate, draw_faces(image, found))
    return FacesResult(1, 1, "", out_json, None if annotate is None else Path(annotate))


def _annotate_video(info: MediaInfo, track: Any, out: Path) -> None:
    """Draw the track onto the source frames and write an MP4 with the source audio."""
    from avatarlab.face.draw import draw_annotations
    from avatarlab.face.pose import HeadPose
    from avatarlab.media import VideoWriter, iter_frames, read_audio_with_rate

    audio, rate = read_audio_with_rate(info.path, mono=False) if info.has_audio else (None, None)
    fps = info.fps or DEFAULT_FPS
    with VideoWriter(out, fps, audio=audio, sample_rate=rate) as writer:
        frames = track_progress(iter_frames(info.path), "drawing preview", total=len(track))
        for i, (frame, _t) in enumerate(frames):
            if i < len(track) and track.found[i]:
                pose = HeadPose(*(float(v) for v in track.pose[i]))
                frame = draw_annotations(frame, track.boxes[i], track.landmarks[i], pose)
            writer.write(frame)
