"""MediaPipe's 478-point face mesh (468 surface points + 10 iris points) in pixels.

The mesh runs on a square crop around the face, scaled to ``CROP_SIZE``: the
landmark model sees a well-framed face whatever the frame size, small faces
found by the full-range detector work too, and neighbouring faces are cut away.
Coordinates come back in frame pixels; z is MediaPipe's relative depth
(origin near the head centre, smaller = closer to the camera) converted to the
same pixel scale as x (MediaPipe's z is normalised by the image width).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from avatarlab.face import models as _models
from avatarlab.face.boxes import (
    check_frame,
    invert_affine,
    square_around,
    square_crop_matrix,
)
from avatarlab.face.detect import FaceDetector

CROP_SIZE = 256
"""Side of the square crop the mesh model runs on (its own input is 192 px)."""

CROP_SCALE = 2.0
"""Crop side as a multiple of the face box's longer side: room for the model's own detector."""


# A serialised NormalizedLandmarkList holds one 17-byte record per point when only
# x, y, z are set: field tag 0x0a, length 15, then tags 0x0d, 0x15, 0x1d each
# followed by a little-endian float32. Reading the bytes with numpy is ten times
# faster than touching 478 protobuf objects from Python.
_RECORD = 17
_TAGS = ((0, 0x0A), (1, 15), (2, 0x0D), (7, 0x15), (12, 0x1D))
_FLOAT_BYTES = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]


def landmarks_to_array(landmark_list: Any) -> np.ndarray:
    """MediaPipe ``NormalizedLandmarkList`` -> ``(N, 3)`` float32 normalised x, y, z."""
    raw = np.frombuffer(landmark_list.SerializeToString(), dtype=np.uint8)
    if raw.size % _RECORD == 0:
        records = raw.reshape(-1, _RECORD)
        if all((records[:, col] == tag).all() for col, tag in _TAGS):
            return np.ascontiguousarray(records[:, _FLOAT_BYTES]).view("<f4").astype(np.float32)
    return np.array([(p.x, p.y, p.z) for p in landmark_list.landmark], dtype=np.float32)


def crop_to_frame(norm: np.ndarray, matrix: np.ndarray, crop_size: int) -> np.ndarray:
    """Map normalised crop landmarks ``(N, 3)`` to frame pixels via the crop's affine.

    ``matrix`` maps frame -> crop pixels (a uniform scale plus translation).
    """
    inv = invert_affine(matrix)
    pts = norm * np.float32(crop_size)
    out = np.empty_like(pts)
    out[:, :2] = pts[:, :2] @ inv[:, :2].T.astype(np.float32) + inv[:, 2].astype(np.float32)
    out[:, 2] = pts[:, 2] * np.float32(inv[0, 0])
    return out


def crop_square(
    frame: np.ndarray, cx: float, cy: float, side: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop (``size`` x ``size`` RGB) centred at ``(cx, cy)``; black outside the frame.

    Returns the crop and the 2x3 frame -> crop affine matrix.
    """
    matrix = square_crop_matrix(cx, cy, side, size)
    crop = cv2.warpAffine(
        frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return crop, matrix


class FaceMesher:
    """Dense 478-point landmarks for single images (static mode: no temporal state).

    ``refine``: include the 10 iris points (478 points); without, 468 points.
    ``detector`` finds the face when no box is given (default: auto-range).
    """

    def __init__(self, refine: bool = True, detector: FaceDetector | None = None) -> None:
        self.refine = refine
        self.detector = detector or FaceDetector()

    def mesh(self, frame: np.ndarray, box: np.ndarray | None = None) -> np.ndarray | None:
        """Landmarks ``(478, 3)`` float32 in frame pixels, or None when no face is found.

        ``box``: ``(4,)`` x0, y0, x1, y1 of the face to mesh; by default the
        largest detected face.
        """
        frame = check_frame(frame)
        if box is None:
            faces = self.detector.detect(frame)
            if not faces:
                return None
            box = faces[0].box
        cx, cy, side = square_around(np.asarray(box, dtype=np.float64), CROP_SCALE)
        crop, matrix = crop_square(frame, cx, cy, side, CROP_SIZE)
        model = _models.mediapipe_static_mesh(self.refine)
        with _models.MEDIAPIPE_LOCK:
            result = model.process(crop)
        if not result.multi_face_landmarks:
            return None
        return crop_to_frame(landmarks_to_array(result.multi_face_landmarks[0]), matrix, CROP_SIZE)


def face_mesh(frame: np.ndarray, box: np.ndarray | None = None) -> np.ndarray | None:
    """478-point mesh ``(478, 3)`` float32 pixels of the face in ``box`` (default: largest), or None."""
    return _default_mesher().mesh(frame, box)


_DEFAULT: list[FaceMesher] = []


def _default_mesher() -> FaceMesher:
    if not _DEFAULT:
        _DEFAULT.append(FaceMesher())
    return _DEFAULT[0]
