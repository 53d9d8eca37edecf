"""Person masks (MediaPipe selfie segmentation) and background replacement.

``PersonSegmenter.mask(frame)`` gives a soft person mask ``(H, W)`` float32 in
[0, 1] at the source resolution (the model reads 256x256, or 144x256 for the
landscape model; its output is upsampled bilinearly). Selfie segmentation is
trained on people near the camera; on whole bodies far away it misses thin
parts (feet, hands) more often than the torso.

``replace_background(frame, mask, background)`` composites a frame over a
colour, an image (scaled to cover the frame, centre-cropped) or a blurred copy
of itself. ``BackgroundReplacer`` does it frame after frame for a video, with
the mask smoothed over time; ``speak``, ``dub``, ``reenact`` and the live server
run it on ``parse_background`` of the user's ``--background`` text.
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
    """A ``--background`` value: "blur", a colour or an image file.

    Colours: our names (:data:`COLOUR_NAMES`, chroma-key ``green``/``blue``), then the CSS
    names, ``#RGB``, ``#RRGGBB`` and ``rgb(...)`` forms Pillow's ``ImageColor`` reads, or
    ``R,G,B``. Anything else is read as an image file (RGB uint8).

    Raises:
        OptionError: neither a colour nor an existing file. MediaError: the file is no
        readable image.
    """
    from PIL import ImageColor

    value = text.strip()
    if value.lower() == "blur":
        return "blur"
    if value.lower() in COLOUR_NAMES:
        return COLOUR_NAMES[value.lower()]
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in rgb):
            return (rgb[0], rgb[1], rgb[2])
    try:
        colour = ImageColor.getrgb(value)
        return (int(colour[0]), int(colour[1]), int(colour[2]))
    except ValueError:
        pass
    if Path(value).is_file():
        from avatarlab.media import read_image

        return read_image(value)
    if Path(value).suffix or os.sep in value or value.startswith("#"):
        raise OptionError(
            f"background {text!r} is neither a colour (#RRGGBB) nor an existing image file"
        )
    names = ", ".join(COLOUR_NAMES)
    raise OptionError(
        f"background {text!r} is not blur, a colour ({names}, CSS names, #RRGGBB or R,G,B) "
        f"or an image file"
    )


def replace_background(frame: np.ndarray, mask: np.ndarray, background: Background) -> np.ndarray:
    """``mask * frame + (1 - mask) * background``, RGB uint8 ``(H, W, 3)``.

    ``mask``: ``(H, W)`` float in [0, 1] (or uint8 0-255) for this frame;
    ``background``: see ``Background``; an image is scaled to cover the frame (:func:`cover`).
    """
    frame = check_frame(frame)
    return _composite(frame, mask, _background(frame, background))


def _composite(frame: np.ndarray, mask: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``mask * frame + (1 - mask) * bg`` rounded to uint8; ``bg`` float32 ``(H, W, 3)``."""
    h, w = frame.shape[:2]
    m = np.asarray(mask)
    if m.shape != (h, w):
        raise OptionError(f"mask shape {m.shape} does not match the frame ({h}, {w})")
    alpha = (m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32))[
        ..., None
    ]
    out = frame.astype(np.float32)  # bg + alpha (frame - bg), in place: 4x fewer temporaries
    out -= bg
    out *= alpha
    out += bg
    out += 0.5
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _background(frame: np.ndarray, background: Any) -> np.ndarray:
    h, w = frame.shape[:2]
    if isinstance(background, str):
        if background != "blur":
            raise OptionError(
                f"background must be a colour, an image or 'blur', got {background!r}"
            )
        return _blur(frame).astype(np.float32)
    if isinstance(background, np.ndarray):
        return cover(check_frame(background), (h, w)).astype(np.float32)
    colour = tuple(background)
    if len(colour) != 3 or not all(0 <= int(v) <= 255 for v in colour):
        raise OptionError(f"background colour must be three values in 0-255, got {background!r}")
    return np.full((h, w, 3), colour, dtype=np.float32)


BLUR_STEP = 4
"""Wide blurs run on the frame shrunk this many times (then enlarged): 8x faster, and the
difference is below what a blur of that width leaves visible."""


def _blur(frame: np.ndarray) -> np.ndarray:
    """The "blur" background of ``frame``: Gaussian, sigma ``BLUR_SIGMA`` x its longer side."""
    h, w = frame.shape[:2]
    sigma = max(1.0, BLUR_SIGMA * max(h, w))
    if sigma < 2 * BLUR_STEP or min(h, w) < 8 * BLUR_STEP:
        return cv2.GaussianBlur(frame, (0, 0), sigma)
    small = cv2.resize(frame, (w // BLUR_STEP, h // BLUR_STEP), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / BLUR_STEP)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def cover(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` scaled (keeping its aspect) to cover ``shape`` = ``(H, W)``, centre-cropped."""
    h, w = shape
    ih, iw = image.shape[:2]
    if (ih, iw) == (h, w):
        return image
    scale = max(w / iw, h / ih)
    sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
    shrink = sw * sh < iw * ih
    resized = cv2.resize(
        image, (sw, sh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    top, left = (sh - h) // 2, (sw - w) // 2
    return np.ascontiguousarray(resized[top : top + h, left : left + w])


class BackgroundReplacer:
    """Replace the background of a video frame by frame (one instance per clip or stream).

    The person mask of each frame is blended with the previous frame's smoothed mask,
    ``m_t = (1 - smoothing) raw_t + smoothing m_(t-1)`` (an exponential moving average), so
    the selfie model's edge noise does not flicker; a colour or an image is prepared once
    per frame size. Not thread-safe: one caller at a time.

    Args:
        background: what ``parse_background`` returns (colour, RGB image or "blur").
        smoothing: weight in [0, 1) of the previous mask (0: each frame's own mask).
    """

    def __init__(self, background: Background, smoothing: float = 0.0) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise OptionError(f"mask smoothing must be in [0, 1), got {smoothing}")
        self.background = background
        self.smoothing = smoothing
        self._segmenter: PersonSegmenter | None = None
        self._mask: np.ndarray | None = None
        self._fill: np.ndarray | None = None  # the colour or image at the last frame size

    def reset(self) -> None:
        """Forget the previous mask (a cut, or a new stream on the same replacer)."""
        self._mask = None

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """The smoothed person mask ``(H, W)`` float32 in [0, 1] of the next frame."""
        if self._segmenter is None:
            self._segmenter = PersonSegmenter()
        raw = self._segmenter.mask(frame)
        if self._mask is None or self._mask.shape != raw.shape or self.smoothing == 0:
            self._mask = raw
        else:
            self._mask = raw * np.float32(1 - self.smoothing) + self._mask * np.float32(
                self.smoothing
            )
        return self._mask

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The next frame (RGB uint8 ``(H, W, 3)``) over the background."""
        frame = check_frame(frame)
        mask = self.mask(frame)
        if isinstance(self.background, str):  # blur: of this very frame
            return _composite(frame, mask, _background(frame, self.background))
        if self._fill is None or self._fill.shape[:2] != frame.shape[:2]:
            self._fill = _background(frame, self.background)
        return _composite(frame, mask, self._fill)

    def close(self) -> None:
        """Release the segmentation graph."""
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def __enter__(self) -> BackgroundReplacer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
