"""Face detection with MediaPipe's BlazeFace models (short- and full-range).

Detections are in frame pixels. The six keypoints follow MediaPipe's order:
subject's right eye, left eye, nose tip, mouth centre, right ear tragion,
left ear tragion (the subject's right eye is on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.face import models as _models
from avatarlab.face.boxes import box_area, check_frame, iou

DetectorModel = Literal["auto", "short", "full"]
_MODEL_SELECTION = {"short": 0, "full": 1}

TILE_GRIDS = (2, 3)
"""Tile layouts the "auto" detector tries, in order, when the whole frame shows no face."""

KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)
"""Names of ``Detection.keypoints`` rows (subject's sides)."""


@dataclass(frozen=True)
class Detection:
    """One detected face.

    box: ``(4,)`` float32 ``x0, y0, x1, y1`` pixels (may extend past the frame);
    score: detector confidence in [0, 1]; keypoints: ``(6, 2)`` float32 pixels,
    rows named by ``KEYPOINT_NAMES``.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return box_area(self.box)


class FaceDetector:
    """Find faces in RGB frames.

    ``model``: "short" (faces within about 2 m, large in the frame), "full"
    (within about 5 m, small or far faces), or "auto": both models, merged (a
    face both find keeps the short-range box); when neither finds anything,
    full-range on 2x2 and then 3x3 grids of overlapping tiles (BlazeFace sees the frame at 128-192 px, so a
    face under ~8 % of the frame width is only found in a tile). ``min_score``
    drops weaker detections. Models load on first use and are shared process-wide.
    """

    def __init__(self, model: DetectorModel = "auto", min_score: float = 0.5) -> None:
        if model not in ("auto", "short", "full"):
            raise OptionError(f"detector model must be auto, short or full, got {model!r}")
        if not 0.0 <= min_score <= 1.0:
            raise OptionError(f"min_score must be in [0, 1], got {min_score}")
        self.model = model
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in ``frame`` (RGB uint8 ``(H, W, 3)``), largest box first."""
        frame = check_frame(frame)
        if self.model != "auto":
            found = self._run(frame, _MODEL_SELECTION[self.model])
        else:
            found = _merge(self._run(frame, 0), self._run(frame, 1))
            for grid in TILE_GRIDS:
                if found:
                    break
                found = self._tiled(frame, grid)
        return sorted(found, key=lambda d: d.area, reverse=True)

    def _tiled(self, frame: np.ndarray, grid: int) -> list[Detection]:
        """Full-range detection on a ``grid`` x ``grid`` layout of tiles overlapping by 25 %."""
        h, w = frame.shape[:2]
        th, tw = min(h, round(h / grid * 1.25)), min(w, round(w / grid * 1.25))
        found: list[Detection] = []
        for i in range(grid):
            for j in range(grid):
                y, x = round(i * (h - th) / (grid - 1)), round(j * (w - tw) / (grid - 1))
                shift = np.array([x, y], dtype=np.float32)
                tile = self._run(np.ascontiguousarray(frame[y : y + th, x : x + tw]), 1)
                moved = [
                    Detection(np.tile(shift, 2) + d.box, d.score, d.keypoints + shift) for d in tile
                ]
                found = _merge(found, moved)
        return found

    def _run(self, frame: np.ndarray, selection: int) -> list[Detection]:
        detector = _models.mediapipe_detector(selection)
        with _models.MEDIAPIPE_LOCK:
            result = detector.process(frame)
        if not result.detections:
            return []
        h, w = frame.shape[:2]
        scale = np.array([w, h], dtype=np.float32)
        out = []
        for det in result.detections:
            score = float(det.score[0])
            if score < self.min_score:
                continue
            rel = det.location_data.relative_bounding_box
            box = np.array(
                [
                    rel.xmin * w,
                    rel.ymin * h,
                    (rel.xmin + rel.width) * w,
                    (rel.ymin + rel.height) * h,
                ],
                dtype=np.float32,
            )
            kps = np.array(
                [[k.x, k.y] for k in det.location_data.relative_keypoints], dtype=np.float32
            )
            out.append(Detection(box=box, score=score, keypoints=kps * scale))
        return out


def _merge(first: list[Detection], second: list[Detection]) -> list[Detection]:
    """Union of two detection lists; of two boxes with IoU >= 0.3 the first list's is kept."""
    return first + [d for d in second if all(iou(d.box, k.box) < 0.3 for k in first)]
