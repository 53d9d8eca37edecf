"""Opening media through PyAV with avatarlab errors instead of ``av.error``.

Everything in ``avatarlab.media`` opens files through :func:`open_input` and wraps
decoding loops in :func:`av_errors`, so a user never sees a raw PyAV traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import av

from avatarlab.errors import MediaError, MediaLimitError

if TYPE_CHECKING:
    from PIL import Image

#: Largest picture avatarlab decodes, in pixels (width x height), for still images and
#: video frames alike: 50 megapixels (8660x5773, or about a 50 MP camera's photo) is
#: 150 MB as RGB. Larger files are refused from their header, before any decoding, so a
#: small compressed file (a 400 KB PNG can hold 16000x16000) cannot exhaust memory.
MAX_IMAGE_PIXELS = 50_000_000


# Still images are read with Pillow (EXIF orientation, palette/alpha handling); every
# other extension goes through PyAV. Animated GIFs are deliberately treated as video.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".jfif", ".ppm", ".pgm"}
)


def check_exists(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path, raising MediaError when it is missing or a folder."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p} not found: check the path (relative paths start at {Path.cwd()})")
    if p.is_dir():
        raise MediaError(f"{p} is a folder, not a media file: pass a video, audio or image file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p} is empty (0 bytes): re-export or re-download it")
    return p


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image by its extension (read with Pillow)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def check_pixels(path: object, width: int, height: int, what: str = "image") -> None:
    """Raise MediaLimitError when a ``width`` x ``height`` picture exceeds MAX_IMAGE_PIXELS."""
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaLimitError(
            f"{path}: the {what} is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are read: scale it down first"
        )


def av_reason(exc: av.FFmpegError) -> str:
    """FFmpeg's reason for ``exc`` as readable words, without its errno or file name.

    PyAV's ``str()`` reads ``[Errno 1094995529] Invalid data found ...: '/path'``: the
    number is an AVERROR tag, not an OS errno, and the path is named by our message.
    """
    reason = str(exc.strerror or type(exc).__name__)
    reason = reason[:1].lower() + reason[1:]
    log = getattr(exc, "log", None)
    if log and len(log) >= 3 and log[2]:  # (level, component, message) of FFmpeg's last log
        reason += f" ({str(log[2]).strip()})"
    return reason


_WRITE_ACTIONS = frozenset({"write", "create"})


@contextlib.contextmanager
def av_errors(path: str | os.PathLike[str], action: str = "read") -> Iterator[None]:
    """Turn PyAV/FFmpeg errors raised inside the block into MediaError naming ``path``."""
    try:
        yield
    except av.FFmpegError as exc:
        hint = (
            "check the output folder, the extension (.mp4, .mkv, .mov, .wav), the encoder "
            "options and free disk space"
            if action in _WRITE_ACTIONS
            else "the file may be truncated, corrupt or not media; check that it plays in a "
            "media player or re-encode it with ffmpeg"
        )
        raise MediaError(f"cannot {action} {path}: {av_reason(exc)}; {hint}") from exc


def full_index(stream: av.stream.Stream) -> int:
    """Entries in ``stream``'s index when it lists every packet (MP4/MOV), else 0.

    Matroska/WebM cues list only some keyframes, so their index says nothing about
    the frame count or truncation.
    """
    entries = len(stream.index_entries)
    return entries if entries and entries == stream.frames else 0


@contextlib.contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading with PyAV; MediaError if missing or not media."""
    p = check_exists(path)
    with av_errors(p, "open"):
        container = av.open(str(p), mode="r")
    try:
        with av_errors(p, "read"):
            yield container
    finally:
        container.close()


def display_rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees (0, 90, 180, 270) the viewer rotates ``frame`` for display."""
    ccw = frame.rotation  # av_display_rotation_get: counter-clockwise degrees
    return int(round(-float(ccw) / 90.0)) % 4 * 90


@contextlib.contextmanager
def open_image(p: Path) -> Iterator[Image.Image]:
    """Open ``p`` with Pillow (lazily: only the header is read) after checking its size.

    Inside the block, Pillow's warnings (palette transparency, odd EXIF, decompression
    bomb) stay off the console and its errors become MediaError; a picture over
    ``MAX_IMAGE_PIXELS`` (below Pillow's own bomb limits) is :class:`MediaLimitError`.
    """
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(p) as img:
                check_pixels(p, *img.size)
                yield img
        except Image.DecompressionBombError as exc:
            # Over twice Pillow's limit, Image.open refuses before we see the size; its
            # message states the pixel count.
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too large"
            raise MediaLimitError(
                f"{p}: the image is {size}; at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                "are read: scale it down first"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise MediaError(
                f"cannot read image {p}: {exc}. Check that it opens in an image viewer"
            ) from exc
