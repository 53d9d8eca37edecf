"""Box and frame helpers shared by detection, meshing, tracking and cropping.

Boxes are ``(4,)`` float arrays ``x0, y0, x1, y1`` in pixels of the frame.
"""

from __future__ import annotations

import numpy as np

from avatarlab.errors import OptionError


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Validate an RGB ``uint8 (H, W, 3)`` frame and return it C-contiguous."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        raise OptionError(f"expected an RGB frame of shape (H, W, 3), got {shape}")
    if frame.dtype != np.uint8:
        raise OptionError(f"expected a uint8 RGB frame, got dtype {frame.dtype}")
    return np.ascontiguousarray(frame)


def box_area(box: np.ndarray) -> float:
    """Area of a box in square pixels (0 for degenerate boxes)."""
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes, in [0, 1]."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(ix, 0.0) * max(iy, 0.0)
    union = box_area(a) + box_area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def box_from_points(points: np.ndarray) -> np.ndarray:
    """Tight ``(4,)`` float32 box around ``(N, >=2)`` points (x, y first)."""
    xy = points[:, :2]
    return np.array(
        [xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()], dtype=np.float32
    )


def square_around(box: np.ndarray, scale: float) -> tuple[float, float, float]:
    """Centre ``(cx, cy)`` and side of the square ``scale`` times the box's longer side."""
    cx = 0.5 * (float(box[0]) + float(box[2]))
    cy = 0.5 * (float(box[1]) + float(box[3]))
    side = scale * max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
    return cx, cy, side


def square_crop_matrix(cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """2x3 affine mapping frame pixels to a ``size`` x ``size`` crop of the square.

    The square is centred at ``(cx, cy)`` with side ``side`` frame pixels; pixel
    centres follow OpenCV's convention (``warpAffine`` with this matrix).
    """
    s = size / side
    return np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]], dtype=np.float64)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (closed form: no LAPACK call in per-frame paths)."""
    (a, b, tx), (c, d, ty) = np.asarray(matrix, dtype=np.float64)
    det = a * d - b * c
    if det == 0:
        raise OptionError("the affine matrix is singular and has no inverse")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points through a 2x3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]
