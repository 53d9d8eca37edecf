"""Person masks (MediaPipe selfie segmentation) and background replacement.

``PersonSegmenter.mask(frame)`` gives a soft person mask ``(H, W)`` float32 in
[0, 1] at the source resolution (the model reads 256x256, or 144x256 for the
landscape model; its output is upsampled bilinearly). Selfie segmentation is
trained on people near the camera; on whole bodies far away it misses thin
parts (feet, hands) more often than the torso.

``replace_background(frame, mask, background)`` composites a frame over a
colour, an image or a blurred copy of itself; ``speak``, ``dub``, ``reenact``
and the live server call it with ``parse_background`` of the user's
``--background`` text.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from avatarlab._util import atomic_output
from avatarlab.body import _models
from avatarlab.errors import MediaError, OptionError
from avatarlab.face.boxes import check_frame

Background = tuple[int, int, int] | np.ndarray | Literal["blur"]
"""An RGB colour, an RGB uint8 image ``(H, W, 3)`` (resized to the frame), or "blur"."""

BLUR_SIGMA = 0.02
"""Gaussian sigma of the "blur" background as a fraction of the frame's longer side."""

COLOUR_NAMES = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "green": (0, 177, 64),
    "blue": (0, 71, 187),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
}
"""Named background colours (``green`` and ``blue`` are the usual chroma-key shades)."""


class PersonSegmenter:
    """Soft person masks for RGB frames; ``landscape`` picks the faster 144x256 model."""

    def __init__(self, landscape: bool = False) -> None:
        self._graph = _models.new_selfie_segmentation(landscape)

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W)`` float32 in [0, 1]: probability that each pixel shows a person."""
        frame = check_frame(frame)
        out = self._graph.process(frame).segmentation_mask
        if out is None:
            return np.zeros(frame.shape[:2], dtype=np.float32)
        return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._graph.close()

    def __enter__(self) -> PersonSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SHARED: list[PersonSegmenter] = []
_LOCK = threading.Lock()


def person_mask(frame: np.ndarray) -> np.ndarray:
    """Person mask ``(H, W)`` float32 in [0, 1] of one frame (a shared segmenter)."""
    with _LOCK:
        if not _SHARED:
            _SHARED.append(PersonSegmenter())
        return _SHARED[0].mask(frame)


def parse_background(text: str) -> Background:
    """A ``--background`` value: "blur", a colour name, "#RRGGBB", "R,G,B", or an image file."""
    value = text.strip()
    if value.lower() == "blur":
        return "blur"
    if value.lower() in COLOUR_NAMES:
        return COLOUR_NAMES[value.lower()]
    if value.startswith("#") and len(value) == 7:
        try:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        except ValueError:
            pass
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in rgb):
            return (rgb[0], rgb[1], rgb[2])
    if Path(value).is_file():
        from avatarlab.media import read_image

        return read_image(value)
    names = ", ".join(COLOUR_NAMES)
    raise OptionError(
        f"background {text!r} is not blur, a colour ({names}, #RRGGBB or R,G,B) or an image file"
    )


def replace_background(frame: np.ndarray, mask: np.ndarray, background: Background) -> np.ndarray:
    """``mask * frame + (1 - mask) * background``, RGB uint8 ``(H, W, 3)``.

    ``mask``: ``(H, W)`` float in [0, 1] (or uint8 0-255) for this frame;
    ``background``: see ``Background``; an image is resized to the frame.
    """
    frame = check_frame(frame)
    h, w = frame.shape[:2]
    m = np.asarray(mask)
    if m.shape != (h, w):
        raise OptionError(f"mask shape {m.shape} does not match the frame ({h}, {w})")
    alpha = (m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32))[
        ..., None
    ]
    bg = _background(frame, background)
    out = alpha * frame.astype(np.float32) + (1.0 - alpha) * bg
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _background(frame: np.ndarray, background: Any) -> np.ndarray:
    h, w = frame.shape[:2]
    if isinstance(background, str):
        if background != "blur":
            raise OptionError(
                f"background must be a colour, an image or 'blur', got {background!r}"
            )
        sigma = max(1.0, BLUR_SIGMA * max(h, w))
        return cv2.GaussianBlur(frame, (0, 0), sigma).astype(np.float32)
    if isinstance(background, np.ndarray):
        image = check_frame(background)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return image.astype(np.float32)
    colour = tuple(background)
    if len(colour) != 3 or not all(0 <= int(v) <= 255 for v in colour):
        raise OptionError(f"background colour must be three values in 0-255, got {background!r}")
    return np.broadcast_to(np.asarray(colour, dtype=np.float32), (h, w, 3))


def mask_to_uint8(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 0-255 of a float mask in [0, 1]."""
    return np.clip(np.asarray(mask, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_mask_png(path: str | os.PathLike[str], mask: np.ndarray) -> Path:
    """Write a mask as an 8-bit greyscale PNG (255 = person) atomically."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise OptionError(f"masks are written as PNG: {target} must end in .png")
    with atomic_output(target) as tmp:
        if not cv2.imwrite(str(tmp), mask_to_uint8(mask)):
            raise MediaError(f"cannot write {target}: check the folder and free disk space")
    return target
