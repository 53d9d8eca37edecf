"""Life in a still portrait: eye blinks, idle head motion and speech-linked nods.

Everything is a deterministic function of the frame index and a seed, computed
causally frame by frame, so the same seed gives the same video whether it is
rendered in one go or streamed chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLINK_MIN_GAP_S = 1.0
"""Shortest time between two blinks."""
BLINK_SHAPE = 2.5
"""Gamma shape of the time between blinks (right-skewed, as measured in people)."""
BLINK_DURATION_S = (0.15, 0.25)
BLINK_CLOSING = 0.4
"""Share of a blink spent closing (the lid falls fast and rises slower)."""

#: Idle-motion amplitudes at ``head_motion = 1``: roll (degrees), x and y shift and
#: scale change (fractions of the face width).
IDLE_AMPLITUDE = np.array([1.8, 0.018, 0.012, 0.012])
IDLE_FREQ_HZ = (0.06, 0.45)
"""Range of the idle-motion frequencies (slow sway)."""
NOD_AMPLITUDE = 0.035
"""Downward nod (fraction of the face width) after a strong speech onset, at ``head_motion = 1``."""
NOD_TIME_S = (0.12, 0.6)
"""Fast and slow envelope time constants whose difference marks speech onsets."""
NOD_SPRING_HZ = 1.6
NOD_DAMPING = 0.7
SPEECH_SWAY = 0.6
"""Extra idle motion while speaking (people move more when they talk)."""


def _smoothstep(x: float) -> float:
    t = min(max(x, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class BlinkSchedule:
    """Eyelid closure per frame, 0 (open) .. 1 (closed), at ``rate`` blinks per minute."""

    def __init__(self, rate_per_min: float, fps: float, seed: int) -> None:
        self.fps = float(fps)
        self.rate = float(rate_per_min)
        self._rng = np.random.default_rng([int(seed), 0xB11C])
        self._blinks: list[tuple[float, float]] = []  # (start s, duration s)
        self._horizon = 0.0

    def _interval(self) -> float:
        mean = 60.0 / self.rate
        return BLINK_MIN_GAP_S + float(
            self._rng.gamma(BLINK_SHAPE, max(mean - BLINK_MIN_GAP_S, 0.1) / BLINK_SHAPE)
        )

    def _extend(self, until: float) -> None:
        while self._horizon <= until:
            start = self._horizon + self._interval()
            duration = float(self._rng.uniform(*BLINK_DURATION_S))
            self._blinks.append((start, duration))
            self._horizon = start + duration

    def closure(self, frame: int) -> float:
        """Lid closure at frame ``frame`` (its midpoint time)."""
        if self.rate <= 0:
            return 0.0
        t = (frame + 0.5) / self.fps
        self._extend(t)
        for start, duration in reversed(self._blinks):
            if start <= t < start + duration:
                u = (t - start) / duration
                if u < BLINK_CLOSING:
                    return _smoothstep(u / BLINK_CLOSING)
                return 1.0 - _smoothstep((u - BLINK_CLOSING) / (1.0 - BLINK_CLOSING))
            if start + duration < t - 1.0:
                break
        return 0.0

    def blink_times(self, duration: float) -> list[tuple[float, float]]:
        """``(start, duration)`` of every blink starting before ``duration`` seconds."""
        if self.rate <= 0:
            return []
        self._extend(duration)
        return [b for b in self._blinks if b[0] < duration]


@dataclass(frozen=True)
class HeadOffset:
    """A small head motion: roll (degrees), shift and scale change (fractions of face width)."""

    roll: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.roll == 0.0 and self.dx == 0.0 and self.dy == 0.0 and self.scale == 0.0

    def matrix(self, pivot: np.ndarray, face_width: float) -> np.ndarray:
        """2x3 forward affine (pixels) rotating/scaling about ``pivot`` then shifting."""
        a = math.radians(self.roll)
        k = 1.0 + self.scale
        rot = k * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        shift = np.array([self.dx, self.dy]) * face_width
        t = pivot - rot @ pivot + shift
        return np.hstack([rot, t[:, None]])


class HeadMotion:
    """Idle sway (sums of slow sinusoids) plus nods at speech onsets, scaled by ``amount``.

    Call :meth:`step` once per frame in order with that frame's jaw opening.
    """

    def __init__(self, amount: float, fps: float, seed: int) -> None:
        self.amount = float(amount)
        self.fps = float(fps)
        rng = np.random.default_rng([int(seed), 0x4EAD])
        self._freq = rng.uniform(*IDLE_FREQ_HZ, size=(4, 3))
        self._phase = rng.uniform(0.0, 2.0 * math.pi, size=(4, 3))
        weight = 1.0 / self._freq
        self._gain = weight / np.sqrt((weight**2).sum(axis=1, keepdims=True))  # unit RMS*sqrt2
        self._fast = self._slow = 0.0
        self._nod = self._nod_speed = 0.0
        self._activity = 0.0
        self._frame = 0

    def step(self, jaw_open: float) -> HeadOffset:
        """Offset for the next frame, given its jaw opening in [0, 1]."""
        t = self._frame / self.fps
        self._frame += 1
        if self.amount <= 0:
            return HeadOffset()
        dt = 1.0 / self.fps
        fast_tau, slow_tau = NOD_TIME_S
        self._fast += (jaw_open - self._fast) * min(dt / fast_tau, 1.0)
        self._slow += (jaw_open - self._slow) * min(dt / slow_tau, 1.0)
        self._activity += (min(jaw_open * 3.0, 1.0) - self._activity) * min(dt / 1.0, 1.0)
        onset = max(self._fast - self._slow, 0.0)
        # Damped spring pulled by the onsets: a quick dip and a soft return.
        w = 2.0 * math.pi * NOD_SPRING_HZ
        accel = w * w * (onset * 4.0 - self._nod) - 2.0 * NOD_DAMPING * w * self._nod_speed
        self._nod_speed += accel * dt
        self._nod += self._nod_speed * dt
        sway = (self._gain * np.sin(2.0 * math.pi * self._freq * t + self._phase)).sum(axis=1)
        idle = IDLE_AMPLITUDE * sway * (1.0 + SPEECH_SWAY * self._activity)
        nod = NOD_AMPLITUDE * min(max(self._nod, -0.5), 1.5)
        a = self.amount
        return HeadOffset(
            roll=a * float(idle[0]),
            dx=a * float(idle[1]),
            dy=a * (float(idle[2]) + nod),
            scale=a * (float(idle[3]) - 0.3 * nod),
        )
