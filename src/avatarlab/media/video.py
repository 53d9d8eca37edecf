"""Reading frames: video files through PyAV, still images through Pillow.

Frames are RGB ``uint8`` arrays ``(H, W, 3)`` in *display* orientation (rotation
metadata applied). Timestamps are seconds on the container's timeline (0 at the
container's start time, the same origin ``read_audio`` uses), taken from each frame's ``pts * time_base`` so
variable-frame-rate clips keep their exact timing; for MP4/MOV files they equal
ffprobe's ``pts_time``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avatarlab._util import track_progress
from avatarlab.errors import MediaError, NoVideoError
from avatarlab.media._open import (
    av_errors,
    check_exists,
    check_pixels,
    display_rotation,
    full_index,
    is_image_path,
    open_image,
    open_input,
)
from avatarlab.media.probe import probe

if TYPE_CHECKING:
    from PIL import Image

# Frames whose timestamp is within this many seconds before ``start`` still count as
# "at start" (pts rounding in time bases like 1/15360).
_TIME_EPS = 1e-6


@dataclass(frozen=True)
class Video:
    """A decoded clip held in memory (use :func:`iter_frames` for long videos).

    Attributes:
        frames: ``(N, H, W, 3)`` RGB uint8.
        timestamps: ``(N,)`` float64 seconds, see :func:`iter_frames`.
        fps: average frame rate in frames per second.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    fps: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a still image as RGB uint8 ``(H, W, 3)``.

    EXIF orientation is applied; grayscale, palette, 16-bit and RGBA images are
    converted to RGB (alpha dropped, as ``cv2.imread`` does). Non-image files with a frame (e.g. a video) return their
    first frame.

    Raises:
        MediaLimitError: the picture has more than ``MAX_IMAGE_PIXELS`` pixels (checked
            from the header, before decoding).
        MediaError: missing, unreadable or empty file.
    """
    p = check_exists(path)
    if not is_image_path(p):
        for frame, _ in iter_frames(p):
            return frame
        raise MediaError(f"{p} has no frames: pass an image or a non-empty video")
    from PIL import ImageOps

    with open_image(p) as img:
        rgb = _pil_rgb(ImageOps.exif_transpose(img))
    if rgb.size == 0:
        raise MediaError(f"{p} is an empty image (size {rgb.shape[1]}x{rgb.shape[0]})")
    return np.ascontiguousarray(rgb)


def _pil_rgb(img: Image.Image) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` from any Pillow mode.

    Alpha is dropped, as ``cv2.imread`` and ``PIL convert("RGB")`` do in the reference
    pipelines; 16-bit grayscale is scaled to 8 bits.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if values.max() > 255 else 1.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def upright(rgb: np.ndarray, rotation_cw: int) -> np.ndarray:
    """Rotate an ``(H, W, 3)`` frame clockwise by ``rotation_cw`` degrees (multiple of 90)."""
    k = (rotation_cw // 90) % 4
    # Always contiguous: FFmpeg pads rows (e.g. 700*3 -> 2112 bytes), which would
    # leave a strided view that torch/OpenCV callers would copy anyway.
    return np.ascontiguousarray(rgb if k == 0 else np.rot90(rgb, k=-k))


def _video_stream(container: av.container.InputContainer, path: object) -> av.VideoStream:
    if not container.streams.video:
        raise NoVideoError(
            f"{path} has no video stream (audio-only or data file): pass a video or an image"
        )
    stream = container.streams.video[0]
    check_pixels(path, stream.codec_context.width, stream.codec_context.height, "video frame")
    # Frame threading decodes several frames in parallel; slice threading helps
    # single large frames. AUTO lets FFmpeg use both where the codec allows.
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = 0
    return stream


def _container_start(container: av.container.InputContainer) -> float:
    start = container.start_time
    return 0.0 if start is None else start / av.time_base


def _seconds(frame: av.VideoFrame, time_base: Fraction | None, origin: float) -> float | None:
    if frame.pts is None or time_base is None:
        return None
    return float(frame.pts * time_base) - origin


def iter_frames(
    path: str | os.PathLike[str], *, start: float = 0.0, end: float | None = None
) -> Iterator[tuple[np.ndarray, float]]:
    """Yield ``(frame, t)`` for every decoded frame with ``start <= t < end``.

    Args:
        path: a video (anything FFmpeg decodes) or a still image (one frame at t=0).
        start: first time in seconds to yield (seeks to the keyframe before it).
        end: stop before this time in seconds; ``None`` reads to the end.

    Yields:
        ``frame``: RGB uint8 ``(H, W, 3)``, display orientation (rotation applied).
        ``t``: presentation time in seconds (float) on the container timeline,
        ``pts * time_base`` minus the container start (0 for MP4), so variable
        frame rates keep their exact timing.

    Raises:
        MediaError: missing, unreadable or truncated file, or no frames at all.
        NoVideoError: the file has no video stream (e.g. audio only).
    """
    if start < 0:
        raise MediaError(f"start={start} is negative: pass a time in seconds >= 0")
    if end is not None and end <= start:
        raise MediaError(f"end={end} must be greater than start={start}")
    p = check_exists(path)
    if is_image_path(p):
        if start <= 0.0 and (end is None or end > 0.0):
            yield read_image(p), 0.0
        return
    yield from _iter_video(p, start, end)


def _iter_video(
    path: os.PathLike[str], start: float, end: float | None
) -> Iterator[tuple[np.ndarray, float]]:
    with open_input(path) as container:
        stream = _video_stream(container, path)
        time_base = stream.time_base
        origin = _container_start(container)
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        if start > 0 and time_base is not None:
            target = int((start + origin) / time_base)
            with av_errors(path, "seek in"):
                container.seek(target, stream=stream, backward=True, any_frame=False)
        rotation: int | None = None
        # One reformatter for the whole clip keeps its swscale context; a fresh one per
        # frame (what frame.to_ndarray(format=...) does) costs more than decoding.
        to_rgb = VideoReformatter()
        index = decoded = packets = 0
        for packet in container.demux(stream):
            packets += packet.size > 0
            for frame in packet.decode():
                decoded += 1
                t = _seconds(frame, time_base, origin)
                if t is None:  # no timestamps (raw streams): assume a constant rate
                    t = start + index / fps
                index += 1
                if start > 0 and t < start - _TIME_EPS:
                    continue  # decoded from the keyframe before ``start``
                if end is not None and t >= end - _TIME_EPS:
                    return
                if rotation is None:
                    rotation = display_rotation(frame)
                yield upright(to_rgb.reformat(frame, format="rgb24").to_ndarray(), rotation), t
        if decoded == 0 and start == 0:
            raise MediaError(
                f"{path} has a video stream but no decodable frames: the file is empty, "
                "truncated or corrupt; re-encode it or use another copy"
            )
        expected = full_index(stream)
        if start == 0 and packets < expected:
            raise MediaError(
                f"{path} is truncated: its index lists {expected} video frames but the file "
                f"ends after {packets}; re-download or re-export it"
            )


def read_video(
    path: str | os.PathLike[str], *, start: float = 0.0, end: float | None = None
) -> Video:
    """Decode a (short) clip fully into memory; see :func:`iter_frames` for the conventions.

    Memory is ``N * H * W * 3`` bytes: about 30 MB per second of 512x512 at 25 fps.
    """
    frames: list[np.ndarray] = []
    times: list[float] = []
    for frame, t in track_progress(iter_frames(path, start=start, end=end), f"reading {path}"):
        frames.append(frame)
        times.append(t)
    if not frames:
        raise MediaError(f"{path} has no frames between {start} s and {end} s")
    info = probe(path)
    stack = np.stack(frames) if len({f.shape for f in frames}) == 1 else _uniform(frames, path)
    return Video(frames=stack, timestamps=np.asarray(times, dtype=np.float64), fps=info.fps)


def _uniform(frames: list[np.ndarray], path: object) -> np.ndarray:
    raise MediaError(
        f"{path} changes frame size mid-stream ({frames[0].shape} -> "
        f"{next(f.shape for f in frames if f.shape != frames[0].shape)}); "
        "use iter_frames or re-encode it at one size"
    )
