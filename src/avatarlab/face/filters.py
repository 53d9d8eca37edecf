"""The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012), vectorised over arrays.

A first-order low-pass filter whose cutoff rises with the signal's speed: at
rest it removes jitter (cutoff ``min_cutoff``), in fast motion it follows with
little lag (cutoff ``min_cutoff + beta * |speed|``). Each array element is
filtered independently; timestamps are in seconds.
"""

from __future__ import annotations

import math

import numpy as np

from avatarlab.errors import OptionError


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of an exponential filter with ``cutoff`` Hz at step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Smooth a stream of same-shaped float arrays.

    ``min_cutoff`` (Hz): cutoff at rest, lower = smoother and laggier.
    ``beta`` (1 / signal unit): how fast the cutoff grows with speed (signal units/s).
    ``d_cutoff`` (Hz): cutoff of the speed estimate.
    Non-finite inputs pass through and restart the filter for those elements.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise OptionError("OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filtered value of sample ``x`` taken at time ``t`` seconds (same shape as ``x``)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape or t <= self._t:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            self._t = t
            return x.copy()
        assert self._dx is not None
        dt = t - self._t
        dx = (x - self._x) / dt
        dx_hat = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        x_hat = self._x + _alpha(cutoff, dt) * (x - self._x)
        bad = ~np.isfinite(x_hat)
        if bad.any():
            x_hat[bad] = x[bad]
            dx_hat[bad] = 0.0
        self._x, self._dx, self._t = x_hat, dx_hat, t
        return x_hat.copy()
