"""Finding media files in folders by extension."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from avatarlab._util import atomic_output
from avatarlab.errors import MediaError, OptionError
from avatarlab.media._open import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".gif", ".ts"}
)
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus"})


def find_media(
    inputs: Iterable[str | os.PathLike[str]],
    suffixes: frozenset[str] = IMAGE_SUFFIXES | VIDEO_SUFFIXES,
) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of media files.

    Files named explicitly are kept whatever their extension; inside folders only
    files with one of ``suffixes`` count. Raises MediaError for a missing input.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            )
        elif p.exists():
            found.append(p)
        else:
            raise MediaError(f"{p} not found: check the path")
    return found


def check_image_output(path: str | os.PathLike[str]) -> Path:
    """Fail fast, before any work, on an image path :func:`write_image` cannot produce."""
    target = Path(path)
    if target.is_dir():
        raise OptionError(f"{target} is a folder: give a file name such as {target / 'out.png'}")
    if target.suffix.lower() not in IMAGE_SUFFIXES or not cv2.haveImageWriter(target.name):
        raise OptionError(f"cannot write {target}: use a .jpg, .png or .webp file name")
    return target


def write_image(path: str | os.PathLike[str], image: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 ``(H, W, 3)`` image atomically; the extension picks the format.

    ``quality`` applies to JPEG/WebP (0-100). Raises OptionError for an extension
    OpenCV cannot write, MediaError for a wrong array.
    """
    target = check_image_output(path)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MediaError(f"images must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_WEBP_QUALITY, max(1, quality)]
    with atomic_output(target) as tmp:
        bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
        try:
            ok = cv2.imwrite(str(tmp), bgr, params)
        except cv2.error as exc:
            raise MediaError(f"cannot write {target}: {exc}") from exc
        if not ok:
            raise MediaError(f"cannot write {target}: check the folder and free disk space")
