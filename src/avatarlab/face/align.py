"""Face crops and pasting them back: similarity alignment and plain square crops.

``align_face`` rotates, scales and translates the frame so the eyes are level
and the face centred in a square crop (the FFHQ recipe's geometry, with a
configurable margin); ``crop_box`` cuts an axis-aligned square around a box
(the ``autocrop`` style the field's pipelines use). Both return the 2x3 affine
matrix mapping frame pixels to crop pixels, so ``paste_back`` can put an edited
crop back into the frame behind a feathered mask without a visible seam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from avatarlab.errors import OptionError
from avatarlab.face import topology as T
from avatarlab.face.boxes import check_frame, invert_affine, square_around


@dataclass(frozen=True)
class AlignedFace:
    """A square face crop: image ``(size, size, 3)`` RGB uint8 and the 2x3 frame->crop matrix."""

    image: np.ndarray
    matrix: np.ndarray

    @property
    def inverse(self) -> np.ndarray:
        """2x3 crop->frame matrix."""
        return invert_affine(self.matrix)


def eyes_and_mouth(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subject's right eye centre, left eye centre and mouth centre ``(2,)`` from 478/468/68 points."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    n = pts.shape[0]
    if n == 68:
        return pts[36:42].mean(0), pts[42:48].mean(0), pts[[48, 54]].mean(0)
    if n in (T.NUM_FACE_POINTS, T.NUM_MESH_POINTS):
        return (
            pts[list(T.RIGHT_EYE)].mean(0),
            pts[list(T.LEFT_EYE)].mean(0),
            pts[list(T.MOUTH_CORNERS)].mean(0),
        )
    raise OptionError(f"landmarks must have 478, 468 or 68 points, got {n}")


def alignment_matrix(landmarks: np.ndarray, size: int, margin: float) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, translation) frame -> aligned crop.

    Geometry as in the FFHQ alignment: the face's x axis combines the eye line
    and the perpendicular of the eye-to-mouth line; the face size is
    ``max(2 x eye distance, 1.8 x eye-to-mouth distance)``; the centre is 10 % of
    the way from the eye midpoint to the mouth. The crop side is face size x
    (1 + 2 x margin), so ``margin=0.5`` reproduces FFHQ's framing.
    """
    if size <= 0:
        raise OptionError(f"size must be positive, got {size}")
    if margin < 0:
        raise OptionError(f"margin must be >= 0, got {margin}")
    right, left, mouth = eyes_and_mouth(landmarks)
    eye_mid = (right + left) / 2
    eye_to_eye = left - right
    eye_to_mouth = mouth - eye_mid
    axis = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    norm = float(np.hypot(*axis))
    if not math.isfinite(norm) or norm < 1e-6:
        raise OptionError("landmarks are degenerate or NaN: cannot align this face")
    ux, uy = axis / norm
    face = max(float(np.hypot(*eye_to_eye)) * 2.0, float(np.hypot(*eye_to_mouth)) * 1.8)
    side = face * (1.0 + 2.0 * margin)
    centre = eye_mid + 0.1 * eye_to_mouth
    k = size / side
    rot = k * np.array([[ux, uy], [-uy, ux]])
    t = np.array([size / 2, size / 2]) - rot @ centre
    return np.hstack([rot, t[:, None]])


def _warp(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``frame`` into a ``size`` square; shrinking goes through an area resize (no aliasing)."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 1.0:
        return cv2.warpAffine(
            frame, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        )
    native = int(math.ceil(size / scale))
    r = native / size  # big pixels per crop pixel; cv2.resize maps X -> (X + 0.5) / r - 0.5
    pre = matrix * r
    pre[:, 2] = (matrix[:, 2] + 0.5) * r - 0.5
    big = cv2.warpAffine(
        frame, pre, (native, native), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def align_face(
    frame: np.ndarray, landmarks: np.ndarray, size: int = 512, margin: float = 0.3
) -> AlignedFace:
    """Similarity-aligned square face crop (eyes level, face centred) of ``frame``.

    ``landmarks``: ``(478 | 468 | 68, >=2)`` pixel points; ``size``: crop side in
    pixels; ``margin``: border around the face as a fraction of the face size
    per side (see ``alignment_matrix``). Outside the frame, edge pixels repeat.
    """
    frame = check_frame(frame)
    matrix = alignment_matrix(landmarks, size, margin)
    return AlignedFace(image=_warp(frame, matrix, size), matrix=matrix)


def box_crop(
    frame: np.ndarray, box: np.ndarray, size: int = 256, margin: float = 0.2
) -> AlignedFace:
    """Axis-aligned square crop around ``box`` (x0, y0, x1, y1), with its frame->crop matrix.

    The square's side is the box's longer side x (1 + 2 x margin), centred on
    the box; it may extend past the frame (edge pixels repeat). Shrinking uses
    area averaging, enlarging bicubic. Use the matrix with ``paste_back``.
    """
    frame = check_frame(frame)
    if size <= 0 or margin < 0:
        raise OptionError(f"need size > 0 and margin >= 0, got size={size}, margin={margin}")
    cx, cy, side = square_around(np.asarray(box, dtype=np.float64), 1.0 + 2.0 * margin)
    k = size / side
    matrix = np.array([[k, 0.0, size / 2 - k * cx], [0.0, k, size / 2 - k * cy]])
    return AlignedFace(image=_warp(frame, matrix, size), matrix=matrix)


def crop_box(
    frame: np.ndarray, box: np.ndarray, size: int = 256, margin: float = 0.2
) -> np.ndarray:
    """Plain square crop ``(size, size, 3)`` RGB uint8 around ``box``; see ``box_crop``."""
    return box_crop(frame, box, size, margin).image


def default_mask(size: int, feather: float) -> np.ndarray:
    """``(size, size)`` float32 mask: 1 in the middle, easing to 0 at the crop border.

    An ellipse inscribed in the crop, shrunk by ``feather`` x size and then
    Gaussian-blurred with sigma ``feather`` x size / 3, so it is ~0 at the edge.
    """
    mask = np.zeros((size, size), dtype=np.float32)
    radius = max(round(size * (0.5 - feather)), 1)
    centre = round((size - 1) / 2)
    cv2.ellipse(mask, (centre, centre), (radius, radius), 0, 0, 360, (1.0,), -1)
    return feather_mask(mask, feather)


def feather_mask(mask: np.ndarray, feather: float) -> np.ndarray:
    """Blur a ``(size, size)`` mask (values 0-1 or 0-255) with sigma ``feather`` x size / 3."""
    m = np.asarray(mask, dtype=np.float32)
    if m.max(initial=0.0) > 1.0:
        m = m * np.float32(1.0 / 255.0)
    sigma = feather * m.shape[0] / 3.0
    blurred = cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT) if sigma > 0 else m
    return np.clip(np.asarray(blurred, dtype=np.float32), 0.0, 1.0)


def paste_back(
    frame: np.ndarray,
    face_image: np.ndarray,
    matrix: np.ndarray,
    mask: np.ndarray | None = None,
    feather: float = 0.1,
) -> np.ndarray:
    """New frame with ``face_image`` (a crop made with ``matrix``) blended back in.

    ``mask``: ``(size, size)`` in crop coordinates (0-1 float or 0-255), e.g. a
    filled face-oval polygon; it is feathered by ``feather`` x size. By default
    an ellipse inscribed in the crop (``default_mask``). Pixels outside the
    warped mask are returned unchanged, bit for bit.
    """
    frame = check_frame(frame)
    face_image = check_frame(face_image)
    size = face_image.shape[0]
    if face_image.shape[1] != size:
        raise OptionError(f"face_image must be square, got {face_image.shape[:2]}")
    alpha = default_mask(size, feather) if mask is None else feather_mask(mask, feather)
    h, w = frame.shape[:2]
    inv = invert_affine(np.asarray(matrix, dtype=np.float64))
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    mapped = corners @ inv[:, :2].T + inv[:, 2]
    x0 = max(int(np.floor(mapped[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(mapped[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(mapped[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(mapped[:, 1].max())) + 2, h)
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    # Frame ROI pixel (x, y) samples the crop at matrix @ (x + x0, y + y0).
    roi_matrix = np.asarray(matrix, dtype=np.float64).copy()
    roi_matrix[:, 2] += roi_matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    roi_size = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(
        face_image, roi_matrix, roi_size, flags=flags, borderMode=cv2.BORDER_REPLICATE
    )
    a = cv2.warpAffine(alpha, roi_matrix, roi_size, flags=flags, borderMode=cv2.BORDER_CONSTANT)[
        ..., None
    ]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    blended = roi + a * (face.astype(np.float32) - roi)
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
