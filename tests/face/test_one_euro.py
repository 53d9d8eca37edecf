"""One-Euro filter: pass-through, jitter removal at rest, little lag in motion, per-element state."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.face import OneEuroFilter

FPS = 25.0


def _run(f: OneEuroFilter, signal: np.ndarray) -> np.ndarray:
    return np.stack([f(x, i / FPS) for i, x in enumerate(signal)])


def test_constant_signal_is_unchanged_and_shape_kept():
    x = np.full((50, 478, 3), 7.5)
    out = _run(OneEuroFilter(1.0, 0.5), x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x)


def test_removes_jitter_at_rest():
    rng = np.random.default_rng(1)
    noisy = 100.0 + rng.normal(0, 1.0, (200, 10))
    out = _run(OneEuroFilter(min_cutoff=1.0, beta=0.0), noisy)
    # An exponential filter with alpha ~0.14 at 25 fps keeps ~8 % of white-noise variance.
    ratio = out[50:].std() / noisy[50:].std()
    assert ratio < 0.35


def test_speed_raises_the_cutoff_and_cuts_lag():
    t = np.arange(100) / FPS
    ramp = (20.0 * t)[:, None]  # 20 units / s
    slow = _run(OneEuroFilter(min_cutoff=1.0, beta=0.0), ramp)
    fast = _run(OneEuroFilter(min_cutoff=1.0, beta=1.0), ramp)
    lag_slow = float((ramp - slow)[50:].mean())
    lag_fast = float((ramp - fast)[50:].mean())
    # Steady-state lag of a first-order filter is speed * tau = 20 / (2 pi fc).
    assert lag_slow == pytest.approx(20.0 / (2 * np.pi * 1.0), rel=0.1)
    assert lag_fast < 0.2 * lag_slow


def test_elements_are_independent_and_nan_restarts():
    f = OneEuroFilter(1.0, 0.0)
    f(np.array([0.0, 0.0]), 0.0)
    out = f(np.array([10.0, np.nan]), 0.04)
    assert 0 < out[0] < 10 and np.isnan(out[1])
    out = f(np.array([10.0, 5.0]), 0.08)
    assert out[1] == 5.0  # restarted element passes through
    f.reset()
    np.testing.assert_array_equal(f(np.array([3.0, 4.0]), 1.0), [3.0, 4.0])


def test_rejects_bad_parameters():
    with pytest.raises(OptionError):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(OptionError):
        OneEuroFilter(beta=-1.0)
