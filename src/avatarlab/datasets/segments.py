"""Pure helpers of the preparation pipeline: shot ranges, runs of usable frames,
timestamp-based frame selection at a target rate, and temporal smoothing.

All of them work on small numpy arrays (labels, times, boxes),
never on frames, so they are cheap and easy to test on synthetic input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Run:
    """Frames ``start <= i < end`` that share one ``label``."""

    start: int
    end: int
    label: int

    def __len__(self) -> int:
        return self.end - self.start


def runs(labels: np.ndarray) -> list[Run]:
    """Split an integer label sequence ``(N,)`` into maximal runs of equal labels."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    return [Run(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends, strict=True)]


def shot_ranges(cuts: np.ndarray, n_frames: int) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges between cuts; ``cuts`` are indices of first frames of new shots."""
    bounds = [0, *sorted(int(c) for c in cuts if 0 < c < n_frames), n_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def select_frames(times: np.ndarray, start: float, end: float, fps: float) -> np.ndarray:
    """Source frame indices that show the video at ``fps`` from ``start`` (inclusive) to ``end``.

    Output frame ``k`` is at time ``start + k / fps``; it takes the source frame
    whose presentation interval contains that time, i.e. the last frame with
    ``times[i] <= start + k / fps`` (a player's choice; no frame is ever taken
    from the future). Sources slower than ``fps`` repeat frames, faster ones skip.

    Args:
        times: ``(N,)`` increasing source timestamps in seconds.
        start: time of the first output frame (normally ``times[first]``).
        end: time after the last frame of the span (last timestamp + one frame).
        fps: output rate.

    Returns:
        ``(K,)`` int64 indices into ``times``, ``K = floor((end - start) * fps + eps)``.
    """
    n_out = int(np.floor((end - start) * fps + 1e-6))
    if n_out <= 0:
        return np.zeros(0, dtype=np.int64)
    targets = start + np.arange(n_out) / fps
    idx = np.searchsorted(times, targets + 1e-6, side="right") - 1
    return np.clip(idx, 0, len(times) - 1).astype(np.int64)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over axis 0 with a window shrinking at the ends.

    ``values`` is ``(N, ...)`` float; ``window`` (odd or even, >= 1) frames. Used to
    steady crop boxes so a crop does not jitter with per-frame detection noise.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    if window <= 1 or n <= 1:
        return x.copy()
    half = window // 2
    flat = x.reshape(n, -1)
    csum = np.concatenate([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)])
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    out = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return out.reshape(x.shape)
