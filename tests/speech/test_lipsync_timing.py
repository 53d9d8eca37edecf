"""Timing-uncertainty blend of the mouth track (issue 15 item 1)."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.speech import CoarticulationOptions, Phone, mouth_frames, mouth_track
from avatarlab.speech.visemes import TIMING_SD_S


def _phones(source: str) -> list[Phone]:
    spans = [("SIL", 0.0, 0.3), ("AA", 0.3, 0.5), ("T", 0.5, 0.56), ("IY", 0.56, 0.8)]
    spans += [("M", 0.8, 0.9), ("AA", 0.9, 1.1), ("SIL", 1.1, 1.5)]
    return [Phone(s, a, b, source) for s, a, b in spans]


def test_defaults_by_source() -> None:
    opts = CoarticulationOptions()
    assert opts.resolved("espeak").timing_sd_s == 0.0
    assert opts.resolved("pocketsphinx-words").timing_sd_s == TIMING_SD_S["pocketsphinx-words"]
    assert CoarticulationOptions(timing_sd_s=0.01).resolved("espeak").timing_sd_s == 0.01
    with pytest.raises(OptionError, match="timing_sd_s"):
        CoarticulationOptions(timing_sd_s=-0.01)


def test_blend_smooths_but_keeps_timing_and_closures() -> None:
    phones = _phones("pocketsphinx-words")
    crisp = mouth_track(phones, 100.0, 1.5, CoarticulationOptions(timing_sd_s=0.0))
    soft = mouth_track(phones, 100.0, 1.5, CoarticulationOptions(timing_sd_s=0.04))
    a, b = crisp.opening.astype(float), soft.opening.astype(float)
    # smoother: less frame-to-frame change, same overall course, no shift of its centre
    assert np.abs(np.diff(b)).sum() < np.abs(np.diff(a)).sum()
    assert np.corrcoef(a, b)[0, 1] > 0.9
    t = np.arange(len(a))
    assert abs((a * t).sum() / a.sum() - (b * t).sum() / b.sum()) < 1.0  # < 10 ms
    # the M (0.80-0.90 s) stays shut on its own frames; weights still sum to one
    assert np.all(soft.lip_closed[81:89] == 1.0)
    assert soft.viseme_weights is not None
    np.testing.assert_allclose(soft.viseme_weights.sum(axis=1), 1.0, atol=1e-5)


def test_chunks_equal_whole_with_blend() -> None:
    phones = _phones("pocketsphinx-words")
    whole = mouth_track(phones, 25.0, 1.5)
    parts = [mouth_frames(phones, 25.0, s, min(s + 7, len(whole))) for s in range(0, len(whole), 7)]
    np.testing.assert_allclose(np.concatenate([p.params for p in parts]), whole.params, atol=1e-6)


def test_espeak_track_unchanged_by_blend() -> None:
    phones = _phones("espeak")
    default = mouth_track(phones, 25.0, 1.5)
    explicit = mouth_track(phones, 25.0, 1.5, CoarticulationOptions(timing_sd_s=0.0))
    np.testing.assert_array_equal(default.params, explicit.params)
