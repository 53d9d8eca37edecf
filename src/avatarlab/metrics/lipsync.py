"""Mouth-shape metrics on 68-point landmarks: LMD, mouth-area IoU (MA), mouth opening.

Landmarks follow the iBUG 68-point order (:mod:`avatarlab.face.landmarks68`): 48-59
outer lip contour, 60-67 inner lip contour, in pixels of the evaluated frames.
Prediction and reference must share one pixel grid and one timeline (the runner
resamples the prediction to the reference's). Frames where either face is missing
(NaN landmarks) are left out of the means.
"""

from __future__ import annotations

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.face.landmarks68 import inter_ocular_distance
from avatarlab.metrics import _tracks
from avatarlab.metrics.base import HIGHER, LOWER, EvalContext, Metric, Requirements, register_metric

#: Mouth points (outer + inner lips) and the outer lip contour, 68-point indices.
MOUTH = slice(48, 68)
OUTER_LIP = slice(48, 60)
#: Upper / lower inner-lip points facing each other (61-67, 62-66, 63-65).
INNER_UPPER = (61, 62, 63)
INNER_LOWER = (67, 66, 65)
#: Face height for mouth opening: top of the nose bridge (27) to the chin (8).
NOSE_BRIDGE_TOP = 27
CHIN = 8
#: Side in pixels of the canvas the union of two lip polygons is rasterised on, and
#: the fixed-point bits of the vertices (cv2.fillPoly ``shift``).
MA_RASTER = 512
_SUBPIXEL_BITS = 4


def mouth_opening(points68: np.ndarray) -> np.ndarray:
    """Inner-lip gap over face height, per frame: ``(..., 68, 2)`` -> ``(...)`` float64.

    Gap: mean distance of the facing inner-lip pairs 61-67, 62-66, 63-65; face height:
    distance from the top of the nose bridge (27) to the chin (8). About 0 for a
    closed mouth and 0.1-0.3 for open speech vowels; scale-free, so it compares
    across resolutions.
    """
    p = np.asarray(points68, dtype=np.float64)
    gap = np.linalg.norm(p[..., INNER_UPPER, :] - p[..., INNER_LOWER, :], axis=-1).mean(-1)
    height = np.linalg.norm(p[..., NOSE_BRIDGE_TOP, :] - p[..., CHIN, :], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return gap / height


def lagged_correlation(gen: np.ndarray, real: np.ndarray, lag: int = 0) -> float:
    """Pearson r of ``gen[t + lag]`` with ``real[t]`` over frames where both are finite.

    ``lag > 0`` means the generated series runs late. Series of different length are
    cut to the shorter one; NaN when fewer than 3 frames overlap.
    """
    n = min(len(gen), len(real))
    a, b = np.asarray(gen[:n], np.float64), np.asarray(real[:n], np.float64)
    if lag > 0:
        a, b = a[lag:], b[:-lag]
    elif lag < 0:
        a, b = a[:lag], b[-lag:]
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else float("nan")


def best_lag(gen: np.ndarray, real: np.ndarray, max_lag: int = 5) -> int:
    """The lag in ``[-max_lag, max_lag]`` frames with the highest :func:`lagged_correlation`."""
    scores = {lag: lagged_correlation(gen, real, lag) for lag in range(-max_lag, max_lag + 1)}
    return max(scores, key=lambda k: -np.inf if np.isnan(scores[k]) else scores[k])


def landmark_distance(pred68: np.ndarray, ref68: np.ndarray, center: bool = False) -> np.ndarray:
    """Mean Euclidean distance of the 20 mouth points (48-67) per frame, in pixels.

    ``pred68``, ``ref68``: ``(N, 68, 2)``. With ``center`` each mouth is first moved so
    its centroid is at the origin, which keeps shape errors and drops position errors.
    Returns ``(N,)`` float64 (NaN where a face is missing).
    """
    a = np.asarray(pred68, dtype=np.float64)[:, MOUTH]
    b = np.asarray(ref68, dtype=np.float64)[:, MOUTH]
    if center:
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
    return np.linalg.norm(a - b, axis=-1).mean(-1)


def polygon_iou(poly_a: np.ndarray, poly_b: np.ndarray, raster: int = MA_RASTER) -> float:
    """IoU of two simple polygons ``(K, 2)``, rasterised together on a ``raster``-pixel canvas.

    The union of their bounding boxes is scaled to ``raster`` pixels on its longer side
    and both are filled with ``cv2.fillPoly`` at 1/16-pixel vertex precision; the
    error is below 1% for lip-like shapes. NaN if a vertex is NaN or both are empty.
    """
    import cv2

    pts = np.concatenate([poly_a, poly_b]).astype(np.float64)
    if not np.isfinite(pts).all():
        return float("nan")
    lo = pts.min(0)
    span = float((pts.max(0) - lo).max())
    if span <= 0:
        return float("nan")
    scale = (raster - 1) / span
    size = np.ceil((pts.max(0) - lo) * scale).astype(int) + 2
    masks = []
    for poly in (poly_a, poly_b):
        mask = np.zeros((size[1], size[0]), np.uint8)
        fixed = np.round((poly - lo) * scale * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], (1,), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        masks.append(mask.astype(bool))
    union = np.count_nonzero(masks[0] | masks[1])
    return float(np.count_nonzero(masks[0] & masks[1]) / union) if union else float("nan")


def mouth_iou(pred68: np.ndarray, ref68: np.ndarray) -> np.ndarray:
    """Per-frame IoU of the outer-lip polygons (48-59): ``(N, 68, 2)`` x2 -> ``(N,)``."""
    pred68, ref68 = np.asarray(pred68), np.asarray(ref68)
    return np.array(
        [polygon_iou(a[OUTER_LIP], b[OUTER_LIP]) for a, b in zip(pred68, ref68, strict=True)]
    )


class _TrackPairMetric(Metric):
    """Clip-level metrics comparing the predicted and reference face tracks."""

    requires = Requirements(reference=True, face_track=True)

    def __init__(self) -> None:
        self.batches: list[dict[str, np.ndarray]] = []

    def reset(self) -> None:
        self.batches = []

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        p = _tracks.landmarks68(ctx.pred_track, "predicted")
        r = _tracks.landmarks68(ctx.ref_track, "reference")
        _tracks.same_length(p, r)
        if pred.ndim == 4 and len(pred) != len(p):
            raise OptionError(f"{len(pred)} frames but {len(p)} landmark rows: track the same clip")
        self.batches.append(self._series(p, r))

    def _series(self, pred68: np.ndarray, ref68: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Mean over all frames of all ``update`` calls where both faces were found.

        Every frame weighs the same, however the frames were split into batches.
        """
        return {
            k: _tracks.nanmean(np.concatenate([b[k] for b in self.batches]))
            if self.batches
            else float("nan")
            for k in self.keys
        }

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-frame series of the last ``update`` call, ``(N,)`` each."""
        return dict(self.batches[-1]) if self.batches else {}


@register_metric("lmd")
class LMDMetric(_TrackPairMetric):
    """Landmark distance of the mouth (points 48-67), lower is better.

    ``lmd``: mean point distance in pixels, no alignment (position and shape errors).
    ``lmd_norm``: the same divided by the reference's inter-ocular distance (eye
    centres) in that frame, so it compares across resolutions.
    ``lmd_centered``: pixels after moving each mouth's centroid to the origin (shape only).
    """

    name = "lmd"
    keys = {"lmd": LOWER, "lmd_norm": LOWER, "lmd_centered": LOWER}
    conventions = (
        "68-point mouth 48-67, pixels of the reference grid; lmd: no alignment; lmd_norm: / "
        "reference inter-ocular distance (eye centres) per frame; lmd_centered: mouth "
        "centroids aligned; mean over frames with both faces, then over clips"
    )

    def _series(self, pred68: np.ndarray, ref68: np.ndarray) -> dict[str, np.ndarray]:
        dist = landmark_distance(pred68, ref68)
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = dist / inter_ocular_distance(ref68)
        return {
            "lmd": dist,
            "lmd_norm": norm,
            "lmd_centered": landmark_distance(pred68, ref68, center=True),
        }


@register_metric("ma")
class MouthAreaMetric(_TrackPairMetric):
    """IoU of the predicted and reference outer-lip polygons (48-59), higher is better."""

    name = "ma"
    keys = {"ma": HIGHER}
    conventions = (
        "IoU of outer-lip polygons 48-59 (68-point) in the reference's pixel grid, no "
        "alignment, rasterised at 512 px per union box; mean over frames, then over clips"
    )

    def _series(self, pred68: np.ndarray, ref68: np.ndarray) -> dict[str, np.ndarray]:
        return {"ma": mouth_iou(pred68, ref68)}


__all__ = [
    "best_lag",
    "lagged_correlation",
    "LMDMetric",
    "MouthAreaMetric",
    "landmark_distance",
    "mouth_iou",
    "mouth_opening",
    "polygon_iou",
]
