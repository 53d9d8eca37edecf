"""Reenactment measures: AKD, APD, AED and per-frame opening correlations.

Plain functions on arrays, so the benchmark uses them now and the metrics package
can wrap them as :class:`Metric` classes later. Conventions:

- **AKD** (average keypoint distance): mean Euclidean distance between
  corresponding points of dlib's 68 iBUG landmarks (all 68: jaw, brows, nose,
  eyes, lips) of the generated and the real frame, divided by the real frame's
  inter-ocular distance (eye-centre to eye-centre), averaged over points then
  frames. FOMM and face-vid2vid report AKD in pixels at 256x256; ours is
  scale-free.
- **APD** (average pose distance): mean absolute difference of yaw, pitch and roll
  (degrees, :mod:`avatarlab.face.pose`'s PnP pose), averaged over angles then frames.
- **AED** (average expression distance), defined on our canonical mesh: each
  478-point mesh is brought into the canonical face's frame by the Umeyama
  similarity on the expression-free points (:class:`~avatarlab.engines.warp.rig.HeadFrame`),
  and AED is the mean Euclidean distance (canonical centimetres) of the 468 surface
  points between the generated and the real frame, averaged over frames. It is pose-
  and scale-free and measures expression (plus any identity shape change). Papers
  differ: FOMM's "AED" is an *identity* distance (a re-identification embedding),
  PIRenderer's is a distance of 3DMM *expression* coefficients; neither equals this.
- **Openings**: mouth = mean inner-lip gap (pairs 61-67, 62-66, 63-65), eyes = mean
  lid gap (37-41, 38-40, 43-47, 44-46), both over the inter-ocular distance; the
  benchmark correlates them per frame (Pearson r) with the real frames'.
"""

from __future__ import annotations

import numpy as np

from avatarlab.face.landmarks68 import inter_ocular_distance

_MOUTH_PAIRS = ((61, 67), (62, 66), (63, 65))
_EYE_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))


def _gaps(points68: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    p = np.asarray(points68, np.float64)
    a, b = [i for i, _ in pairs], [j for _, j in pairs]
    gap = np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1).mean(-1)
    return gap / inter_ocular_distance(p)


def mouth_opening(points68: np.ndarray) -> np.ndarray:
    """Inner-lip gap over inter-ocular distance: ``(..., 68, 2)`` -> ``(...)``."""
    return _gaps(points68, _MOUTH_PAIRS)


def eye_opening(points68: np.ndarray) -> np.ndarray:
    """Mean lid gap of both eyes over inter-ocular distance: ``(..., 68, 2)`` -> ``(...)``."""
    return _gaps(points68, _EYE_PAIRS)


def akd(pred68: np.ndarray, ref68: np.ndarray) -> float:
    """AKD of ``(N, 68, 2)`` generated vs real landmarks (pixels), in inter-ocular distances.

    Frames with a NaN on either side are skipped; NaN when none is left.
    """
    p, r = np.asarray(pred68, np.float64), np.asarray(ref68, np.float64)
    dist = np.linalg.norm(p - r, axis=-1).mean(-1) / inter_ocular_distance(r)
    dist = dist[np.isfinite(dist)]
    return float(dist.mean()) if len(dist) else float("nan")


def apd(pred_pose: np.ndarray, ref_pose: np.ndarray) -> float:
    """APD of ``(N, 3)`` yaw, pitch, roll (degrees) generated vs real; NaN rows skipped."""
    diff = np.abs(np.asarray(pred_pose, np.float64) - np.asarray(ref_pose, np.float64)).mean(-1)
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if len(diff) else float("nan")


def canonical_meshes(meshes: np.ndarray) -> np.ndarray:
    """``(N, 468, 3)`` canonical (pose-free) meshes of ``(N, 468 | 478, 3)`` pixel meshes."""
    from avatarlab.engines.warp.rig import HeadFrame

    out = np.full((len(meshes), 468, 3), np.nan)
    for i, mesh in enumerate(np.asarray(meshes, np.float64)):
        face = mesh[:468, :3]
        if np.isfinite(face).all():
            out[i] = HeadFrame.fit(face).to_head(face)
    return out


def aed(pred_mesh: np.ndarray, ref_mesh: np.ndarray) -> float:
    """AED of ``(N, 478, 3)`` generated vs real pixel meshes, canonical cm (see module doc)."""
    dist = np.linalg.norm(canonical_meshes(pred_mesh) - canonical_meshes(ref_mesh), axis=-1)
    per_frame = dist.mean(-1)
    per_frame = per_frame[np.isfinite(per_frame)]
    return float(per_frame.mean()) if len(per_frame) else float("nan")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two series over the frames where both are finite."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else float("nan")
