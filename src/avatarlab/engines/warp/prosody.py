"""Prosody per video frame for head motion: loudness and voice pitch, computed causally.

Frame ``k`` (shown at ``(k + 0.5) / fps``) gets the RMS level (dBFS) and the
fundamental frequency (semitones re 100 Hz, NaN when unvoiced) of a 40 ms Hann
window of 16 kHz audio centred on its time. The pitch is the peak of the
normalised autocorrelation in 70-400 Hz (a plain autocorrelation tracker, cheap
and good enough to find stressed syllables). The look-ahead is half a window
(20 ms), below the mouth analysis's (:data:`avatarlab.speech.features.LOOKAHEAD_S`),
so a live stream has the audio a frame needs by the time its mouth is known.
Audio before the start or after the end counts as silence, the same for a whole
clip and for a stream fed chunk by chunk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from avatarlab.media import SPEECH_RATE

WINDOW = 640
"""Analysis window, 16 kHz samples (40 ms: two periods of a 70 Hz voice)."""
F0_RANGE_HZ = (70.0, 400.0)
VOICING = 0.5
"""Normalised autocorrelation peak above which a window counts as voiced."""
OCTAVE_SHARE = 0.85
"""The pitch period is the shortest lag whose autocorrelation peak reaches this share of the
highest one."""
SILENCE_DB = -60.0
"""Windows quieter than this are unvoiced whatever their autocorrelation."""
_N_FFT = 2048
_HANN = np.hanning(WINDOW + 2)[1:-1]
_LAG = (int(SPEECH_RATE / F0_RANGE_HZ[1]), int(math.ceil(SPEECH_RATE / F0_RANGE_HZ[0])))
# Autocorrelation of the window itself, to undo the taper's bias towards short lags.
_WIN_AC = np.fft.irfft(np.abs(np.fft.rfft(_HANN, _N_FFT)) ** 2)[: _LAG[1] + 2]
_WIN_AC /= _WIN_AC[0]


def analyse_window(x: np.ndarray) -> tuple[float, float]:
    """``(level_db, pitch_st)`` of one ``(WINDOW,)`` window of 16 kHz audio."""
    x = np.asarray(x, np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    level = 20.0 * math.log10(rms + 1e-5)
    if level < SILENCE_DB:
        return level, math.nan
    spec = np.fft.rfft(x * _HANN, _N_FFT)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2)[: _LAG[1] + 2]
    if ac[0] <= 0:
        return level, math.nan
    r = ac / (ac[0] * _WIN_AC)
    lo, hi = _LAG
    seg = r[lo : hi + 1]
    best = float(seg.max())
    if best < VOICING:
        return level, math.nan
    # The first peak near the best, not the best: multiples of the period score as high
    # (octave errors), and the taper correction favours long lags.
    mid = seg[1:-1]
    peaks = np.flatnonzero((mid >= seg[:-2]) & (mid >= seg[2:]) & (mid >= OCTAVE_SHARE * best))
    k = lo + 1 + int(peaks[0]) if len(peaks) else lo + int(np.argmax(seg))
    a, b, c = r[k - 1], r[k], r[k + 1]
    den = a - 2.0 * b + c
    shift = 0.5 * (a - c) / den if den < 0 else 0.0
    f0 = SPEECH_RATE / (k + float(np.clip(shift, -0.5, 0.5)))
    return level, 12.0 * math.log2(f0 / 100.0)


class StreamingProsody:
    """Audio in (any rate, mono float), :func:`analyse_window` per video frame out.

    :meth:`push` audio as it arrives; :meth:`frame` ``k`` for increasing ``k``. Missing
    audio (before the start, not yet received, after the end) is read as silence.
    """

    def __init__(self, fps: float, sample_rate: int = SPEECH_RATE) -> None:
        self.fps = float(fps)
        self._resampler: Any = None
        if int(sample_rate) != SPEECH_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(int(sample_rate), SPEECH_RATE, 1, dtype="float32")
        self._audio = np.zeros(0, np.float32)
        self._offset = 0  # absolute 16 kHz sample index of self._audio[0]

    def push(self, chunk: np.ndarray, last: bool = False) -> None:
        """Append audio; ``last`` flushes the resampler (end of stream)."""
        x = np.asarray(chunk, np.float32).reshape(-1)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=last)
        self._audio = np.concatenate([self._audio, x])

    def frame(self, k: int) -> tuple[float, float]:
        """``(level_db, pitch_st)`` of frame ``k``; earlier audio is then dropped."""
        centre = int(round((k + 0.5) / self.fps * SPEECH_RATE))
        start = centre - WINDOW // 2
        lo = start - self._offset
        window = np.zeros(WINDOW, np.float32)
        a, b = max(lo, 0), min(lo + WINDOW, len(self._audio))
        if b > a:
            window[a - lo : b - lo] = self._audio[a:b]
        drop = min(max(lo, 0), len(self._audio))
        self._audio, self._offset = self._audio[drop:], self._offset + drop
        return analyse_window(window)


def prosody_frames(audio16k: np.ndarray, fps: float, count: int) -> np.ndarray:
    """``(count, 2)`` level (dBFS) and pitch (semitones, NaN unvoiced) of a whole clip."""
    stream = StreamingProsody(fps)
    stream.push(audio16k)
    return np.array([stream.frame(k) for k in range(count)], np.float64).reshape(count, 2)
