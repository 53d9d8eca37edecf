"""Face crops with syncnet_python's geometry: the one crop the runner and SyncNet share.

syncnet_python's ``run_pipeline.py`` (``crop_video``) smooths the face boxes over time
and cuts a 224x224 crop around each: box centre and half size (the larger half side)
median-filtered with kernel 13 (zero-padded ends), the region
``[y - s, y + s(1 + 2c)] x [x - s(1 + c), x + s(1 + c)]`` (``c = 0.4``) of the frame
padded with grey 110, bilinear resize. :func:`smoothed_boxes` does the smoothing,
:func:`face_crop` cuts one frame (the same pixels as padding the whole frame, ~4x
faster on 512x512 frames), :func:`face_crops` does both for a clip.
"""

from __future__ import annotations

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.metrics._tracks import fill_gaps

#: Side of the crops (SyncNet's input size), pixels.
CROP_SIZE = 224
#: Margin factor ``c`` of run_pipeline's crop region.
CROP_SCALE = 0.4
#: Kernel of the median filter run_pipeline smooths face boxes with, frames.
BOX_SMOOTH = 13
#: Value of the pixels outside the frame (run_pipeline's ``np.pad`` value).
CROP_PAD_VALUE = 110


def smoothed_boxes(boxes: np.ndarray) -> np.ndarray:
    """Square face boxes ``(N, 4)`` x0, y0, x1, y1 smoothed over time as run_pipeline does.

    NaN rows (no face) are interpolated from their neighbours (edges held); centre and
    half size are median-filtered with kernel 13, zero-padded ends (clips shorter than
    13 frames get the largest odd kernel that fits). Raises ``NoFaceError`` when no
    frame has a face.
    """
    from scipy.signal import medfilt

    b = fill_gaps(np.asarray(boxes, dtype=np.float64), "face crops")
    half = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    cy, cx = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
    n = len(b)
    kernel = min(BOX_SMOOTH, n if n % 2 else n - 1)
    half, cy, cx = (medfilt(v, kernel) if kernel > 1 else v for v in (half, cy, cx))
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def face_crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The ``(224, 224, 3)`` crop of RGB ``frame`` ``(H, W, 3)`` around one smoothed box.

    Only the crop's own canvas is filled with the pad value, instead of padding the
    whole frame; the slice bounds follow numpy's rules on the padded frame, as the
    reference slices it, so the pixels are the reference's.
    """
    import cv2

    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    s = max(y1 - y0, x1 - x0) / 2
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    c = CROP_SCALE
    pad = int(s * (1 + 2 * c))
    my, mx = cy + pad, cx + pad
    top, bottom, _ = slice(int(my - s), int(my + s * (1 + 2 * c))).indices(h + 2 * pad)
    left, right, _ = slice(int(mx - s * (1 + c)), int(mx + s * (1 + c))).indices(w + 2 * pad)
    canvas = np.full((max(bottom - top, 0), max(right - left, 0), 3), CROP_PAD_VALUE, np.uint8)
    sy0, sy1 = max(top, pad), min(bottom, pad + h)
    sx0, sx1 = max(left, pad), min(right, pad + w)
    if sy1 > sy0 and sx1 > sx0:
        canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = frame[
            sy0 - pad : sy1 - pad, sx0 - pad : sx1 - pad
        ]
    return cv2.resize(canvas, (CROP_SIZE, CROP_SIZE))


def face_crops(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A clip's crops: ``(N, H, W, 3)`` RGB uint8 frames and ``(N, 4)`` raw face boxes
    (NaN rows: no face) -> ``(N, 224, 224, 3)`` RGB uint8 around the smoothed boxes."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (len(frames), 4):
        raise OptionError(f"need one box per frame: {boxes.shape} boxes for {len(frames)} frames")
    out = np.empty((len(frames), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for i, (frame, box) in enumerate(zip(frames, smoothed_boxes(boxes), strict=True)):
        out[i] = face_crop(frame, box)
    return out


__all__ = [
    "BOX_SMOOTH",
    "CROP_PAD_VALUE",
    "CROP_SCALE",
    "CROP_SIZE",
    "face_crop",
    "face_crops",
    "smoothed_boxes",
]
