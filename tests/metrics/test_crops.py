"""The one face crop (syncnet_python's run_pipeline geometry) shared by scoring and SyncNet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarlab.errors import NoFaceError, OptionError
from avatarlab.metrics.crops import face_crop, face_crops, smoothed_boxes


def _run_pipeline_crops(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """run_pipeline.py's crop_video, written out as the reference does it: boxes
    interpolated over missed frames, centre and half size median-filtered (kernel 13,
    zero-padded; shorter clips the largest odd kernel that fits), the whole frame padded
    with 110, the region sliced and resized to 224 (bilinear)."""
    b = boxes.astype(np.float64).copy()
    t = np.arange(len(b))
    ok = np.isfinite(b).all(1)
    for j in range(4):
        b[:, j] = np.interp(t, t[ok], b[ok, j])
    half = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    cy, cx = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
    n = len(b)
    k = min(13, n if n % 2 else n - 1)

    def med(v: np.ndarray) -> np.ndarray:
        padded = np.pad(v, k // 2)
        return np.median(np.lib.stride_tricks.sliding_window_view(padded, k), axis=1)

    half, cy, cx = med(half), med(cy), med(cx)
    out = []
    for i, frame in enumerate(frames):
        s = half[i]
        pad = int(s * 1.8)
        img = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
        my, mx = cy[i] + pad, cx[i] + pad
        face = img[int(my - s) : int(my + s * 1.8), int(mx - s * 1.4) : int(mx + s * 1.4)]
        out.append(cv2.resize(face, (224, 224)))
    return np.stack(out)


def test_face_crops_equal_run_pipeline_pixels():
    """Cropping frame by frame on a small canvas gives the padded-frame reference's pixels."""
    rng = np.random.default_rng(0)
    for n, (h, w) in ((30, (300, 320)), (8, (200, 180))):
        frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        centre = np.array([w / 2, h / 2]) + np.cumsum(rng.normal(0, 8, (n, 2)), 0)
        half = rng.uniform(30, 90, n)
        boxes = np.stack(
            [centre[:, 0] - half, centre[:, 1] - 1.1 * half, centre[:, 0] + half,
             centre[:, 1] + 0.9 * half], axis=1,
        ).astype(np.float32)  # fmt: skip
        boxes[3:5] = np.nan  # missed detections are interpolated
        boxes[-1] = [w - 20, h - 30, w + 100, h + 80]  # partly outside the frame
        expected = _run_pipeline_crops(frames, boxes)
        np.testing.assert_array_equal(face_crops(frames, boxes), expected)
        one_by_one = [face_crop(f, b) for f, b in zip(frames, smoothed_boxes(boxes), strict=True)]
        np.testing.assert_array_equal(np.stack(one_by_one), expected)


def test_face_crops_refuse_bad_boxes():
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    with pytest.raises(OptionError, match="one box per frame"):
        face_crops(frames, np.zeros((2, 4)))
    with pytest.raises(NoFaceError, match="no frame has a face"):
        face_crops(frames, np.full((3, 4), np.nan))
