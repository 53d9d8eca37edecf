"""LivePortrait's crop convention, driven by avatarlab's landmarks instead of InsightFace.

The reference (KwaiVGI/LivePortrait ``src/utils/crop.py``, ``src/utils/cropper.py``,
``src/config/crop_config.py``) detects the face with InsightFace ``buffalo_l``, refines
203 landmarks with its ``landmark.onnx``, and crops a square around them:

- two points fix the crop's axes: the mean of the eye centres and the mouth centre
  (``parse_pt2_from_pt_x``); ``uy`` points from eyes to mouth, ``ux`` is ``uy`` turned
  90 degrees, so the crop is de-rolled;
- the side is ``scale`` times the larger extent of all landmarks along those axes, the
  centre is the middle of that extent moved by ``vx``/``vy`` times the side
  (``parse_rect_from_landmark``); the crop is warped to 512 with a similarity
  (``_estimate_similar_transform_from_pts``) and area-resized to the 256 network input.

Here the landmarks are our 68 points (:func:`avatarlab.face.mesh_to_68` of the
478-point MediaPipe mesh, or dlib's): the reference handles a 68-point set natively
(``parse_pt2_from_pt68``: eye centres from the eye corners 37/40 and 43/46, mouth
centre from the corners 49/55), and the 68 points span the same jaw-to-brow extent as
its 106/203 sets, so ``scale`` 2.3 and ``vy`` -0.125 keep their meaning. Driving frames
are cropped as ``crop_driving_video`` does (axis-aligned, scale 2.2, ``vy`` -0.1: the
roll stays in the frame for the motion extractor to see), with the box of the first
tracked frame held for the clip (the reference averages all frames' boxes; a causal
engine cannot look ahead). Eye and lip ratios for retargeting are the reference's
distance ratios (``src/utils/retargeting_utils.py``: lid gap over eye width, inner-lip
gap over mouth width) measured on the mesh's lid, corner and lip points.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from avatarlab.face import topology as T

MODEL_SIZE = 256
"""Network input side."""
CROP_SIZE = 512
"""``crop_config.dsize``: side of the crop the output is pasted back from."""


def crop_axes_points(points68: np.ndarray) -> np.ndarray:
    """``(2, 2)``: centre of the two eyes (from their corners) and of the mouth corners."""
    p = np.asarray(points68, dtype=np.float64)
    eyes = (p[[36, 39]].mean(0) + p[[42, 45]].mean(0)) / 2
    mouth = (p[48] + p[54]) / 2
    return np.stack([eyes, mouth])


def crop_rect(
    points: np.ndarray, scale: float, vx: float = 0.0, vy: float = 0.0
) -> tuple[np.ndarray, float, float]:
    """``(centre (2,), side, angle)`` of the crop square around 68 landmarks (pixels, rad).

    ``angle`` is the roll of the crop's x axis (positive clockwise in image coordinates).
    """
    pts = np.asarray(points, dtype=np.float64)
    pt2 = crop_axes_points(pts)
    uy = pt2[1] - pt2[0]
    length = float(np.linalg.norm(uy))
    uy = np.array([0.0, 1.0]) if length <= 1e-3 else uy / length
    ux = np.array([uy[1], -uy[0]])
    angle = math.acos(float(np.clip(ux[0], -1.0, 1.0)))
    if ux[1] < 0:
        angle = -angle
    axes = np.stack([ux, uy])
    centre0 = pts.mean(0)
    local = (pts - centre0) @ axes.T
    lo, hi = local.min(0), local.max(0)
    mid = (lo + hi) / 2
    side = float((hi - lo).max()) * scale
    centre = centre0 + ux * mid[0] + uy * mid[1] + ux * (vx * side) + uy * (vy * side)
    return centre, side, angle


def crop_matrix(
    centre: np.ndarray, side: float, angle: float, size: int = CROP_SIZE, rotate: bool = True
) -> np.ndarray:
    """``(2, 3)`` similarity from frame to a ``size`` crop of ``side`` pixels at ``centre``."""
    s = size / side
    c, si = (math.cos(angle), math.sin(angle)) if rotate else (1.0, 0.0)
    cx, cy = float(centre[0]), float(centre[1])
    t = size / 2
    return np.array(
        [
            [s * c, s * si, t - s * (c * cx + si * cy)],
            [-s * si, s * c, t - s * (-si * cx + c * cy)],
        ]
    )


def source_crop_matrix(
    points68: np.ndarray, scale: float, vy: float, vx: float = 0.0
) -> np.ndarray:
    """The de-rolled 512 crop of a source portrait (``crop_image`` with ``flag_do_rot``)."""
    centre, side, angle = crop_rect(points68, scale, vx, vy)
    return crop_matrix(centre, side, angle)


def driving_crop_matrix(points68: np.ndarray, scale: float, vy: float) -> np.ndarray:
    """The axis-aligned 512 crop of a driving frame (``crop_driving_video``'s box)."""
    centre, side, _ = crop_rect(points68, scale, 0.0, vy)
    return crop_matrix(centre, side, 0.0, rotate=False)


def warp_crop(frame: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """``(size, size, 3)`` crop by ``matrix`` (bilinear, black outside the frame)."""
    return cv2.warpAffine(
        frame, np.asarray(matrix, dtype=np.float64), (size, size), flags=cv2.INTER_LINEAR
    )


def model_input(crop512: np.ndarray, area: bool = True) -> np.ndarray:
    """The 256x256 network input of a 512 crop (area resize for the source, as the
    reference's cropper; bilinear for driving frames, as its pipeline)."""
    flags = cv2.INTER_AREA if area else cv2.INTER_LINEAR
    return cv2.resize(crop512, (MODEL_SIZE, MODEL_SIZE), interpolation=flags)


def distance_ratio(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    """``|a - b| / (|c - d| + 1e-6)`` (``calculate_distance_ratio``)."""
    return float(np.linalg.norm(a - b) / (np.linalg.norm(c - d) + 1e-6))


def eye_ratios(mesh: np.ndarray) -> np.ndarray:
    """``(2,)`` eye-open ratios (lid gap over eye width), image-left eye first."""
    m = np.asarray(mesh, dtype=np.float64)[:, :2]
    right = distance_ratio(
        m[T.RIGHT_EYE_LIDS[0]], m[T.RIGHT_EYE_LIDS[1]], *m[list(T.RIGHT_EYE_CORNERS)]
    )
    left = distance_ratio(
        m[T.LEFT_EYE_LIDS[0]], m[T.LEFT_EYE_LIDS[1]], *m[list(T.LEFT_EYE_CORNERS)]
    )
    return np.array([right, left])


def lip_ratio(mesh: np.ndarray) -> float:
    """Lip-open ratio: inner-lip gap over mouth width."""
    m = np.asarray(mesh, dtype=np.float64)[:, :2]
    return distance_ratio(m[T.UPPER_LIP_INNER], m[T.LOWER_LIP_INNER], *m[list(T.MOUTH_CORNERS)])
