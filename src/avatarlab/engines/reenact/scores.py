"""Per-frame opening measures for the reenactment benchmark, and a Pearson helper.

AKD, APD and AED are metrics (:mod:`avatarlab.metrics.reenactment`, ``avatarlab eval
--metrics akd,apd,aed``). Here:

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


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two series over the frames where both are finite."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else float("nan")
