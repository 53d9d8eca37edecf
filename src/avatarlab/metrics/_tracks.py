"""Reading landmarks and head pose off the evaluation context for track-based metrics.

A "track" here is an :class:`avatarlab.face.FaceTrack` (``landmarks68()`` method,
``pose`` attribute) or, for direct use and tests, the arrays themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from avatarlab.errors import NoFaceError, OptionError


def landmarks68(track: Any, role: str) -> np.ndarray:
    """``(N, 68, 2)`` float64 pixel landmarks of ``track`` (NaN rows: no face)."""
    if track is None:
        raise OptionError(f"this metric needs the {role} face track: run it with face tracking")
    points = track.landmarks68() if hasattr(track, "landmarks68") else track
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise OptionError(f"{role} landmarks must be (N, 68, 2), got {points.shape}")
    return points


def mesh(track: Any, role: str) -> np.ndarray:
    """``(N, 478 | 468, 3)`` float64 pixel meshes of ``track`` (NaN rows: no face)."""
    if track is None:
        raise OptionError(f"this metric needs the {role} face track: run it with face tracking")
    points = np.asarray(getattr(track, "landmarks", track), dtype=np.float64)
    if points.ndim != 3 or points.shape[1] not in (468, 478) or points.shape[2] != 3:
        raise OptionError(f"{role} mesh must be (N, 468 or 478, 3), got {points.shape}")
    return points


def pose(track: Any, role: str) -> np.ndarray:
    """``(N, 3)`` float64 yaw, pitch, roll in degrees of ``track`` (NaN rows: no face)."""
    if track is None:
        raise OptionError(f"this metric needs the {role} face track: run it with face tracking")
    angles = np.asarray(getattr(track, "pose", track), dtype=np.float64)
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise OptionError(f"{role} head pose must be (N, 3) yaw, pitch, roll, got {angles.shape}")
    return angles


def same_length(pred: np.ndarray, ref: np.ndarray) -> None:
    """Refuse pairs on different timelines (the runner resamples to the reference's)."""
    if len(pred) != len(ref):
        raise OptionError(
            f"prediction has {len(pred)} frames but the reference {len(ref)}: resample the "
            "prediction to the reference timeline first"
        )


def nanmean(values: ArrayLike) -> float:
    """Mean over finite values; NaN when there are none (no warning)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def mean_over_clips(clips: list[dict[str, float]], always: tuple[str, ...]) -> dict[str, float]:
    """Mean of each key over the clips that have it; ``always`` keys are NaN with no clips."""
    keys = list(always) + [k for c in clips for k in c if k not in always]
    keys = list(dict.fromkeys(keys))
    return {k: nanmean(np.array([c[k] for c in clips if k in c])) for k in keys}


def fill_gaps(x: np.ndarray, what: str = "motion") -> np.ndarray:
    """Linear interpolation over time of non-finite rows of ``(N, ...)``; edges held."""
    flat = x.reshape(len(x), -1).copy()
    ok = np.isfinite(flat).all(1)
    if not ok.any():
        raise NoFaceError(f"no frame has a face: cannot measure {what}", list(range(len(x))))
    if ok.all():
        return x
    t = np.arange(len(x))
    for j in range(flat.shape[1]):
        flat[:, j] = np.interp(t, t[ok], flat[ok, j])
    return flat.reshape(x.shape)


class ClipSeries:
    """State of a per-clip track metric: each clip's means and the last clip's series.

    Mixed in before :class:`~avatarlab.metrics.base.Metric`; ``update`` appends to
    ``clips`` and sets ``_last`` (``(N,)`` arrays by name).
    """

    def __init__(self) -> None:
        self.clips: list[dict[str, float]] = []
        self._last: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.clips = []
        self._last = {}

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-frame series of the last clip, ``(N,)`` each."""
        return dict(self._last)
