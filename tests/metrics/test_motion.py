"""Head-motion diversity and Bailando's Beat Align Score on synthetic signals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from avatarlab.metrics import motion as mo
from avatarlab.metrics.base import EvalContext, create_metric

FPS = 25.0


def _ba_reference(music_beats: np.ndarray, motion_beats: np.ndarray) -> float:
    """Bailando's BA(), as the reference loops it (sigma = 3 hard-coded as / 2 / 9)."""
    ba = 0.0
    for bb in music_beats:
        ba += np.exp(-np.min((motion_beats - bb) ** 2) / 2 / 9)
    return ba / len(music_beats)


def _moving_face(speed: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks, IOD 60 px, translating right by ``speed[t]`` * 60 px at step t."""
    base = np.zeros((68, 2))
    base[36:42, 0], base[42:48, 0] = -30.0, 30.0
    base[:36, 1] = np.linspace(-40, 40, 36)
    x = np.concatenate([[0.0], np.cumsum(speed)]) * 60.0
    return base[None] + np.stack([x, np.zeros_like(x)], -1)[:, None, :]


@dataclass
class _Track:
    points: np.ndarray
    pose: np.ndarray

    def landmarks68(self) -> np.ndarray:
        return self.points


def test_head_diversity_is_mean_axis_std():
    n = 40
    pose = np.zeros((n, 3))
    pose[:, 0] = np.where(np.arange(n) % 2, 5.0, -5.0)  # yaw std 5
    pose[:, 1] = 12.0  # pitch constant: std 0
    pose[:, 2] = np.where(np.arange(n) % 2, 2.0, -2.0) + 7  # roll std 2
    with_gap = np.vstack([pose, [[np.nan] * 3]])
    np.testing.assert_allclose(mo.head_pose_std(with_gap), [5.0, 0.0, 2.0])
    assert mo.head_diversity(with_gap) == pytest.approx(7.0 / 3.0)

    metric = create_metric("head_diversity")
    ctx = EvalContext(pred_track=_Track(np.zeros((n, 68, 2)), pose), ref_track=_Track(
        np.zeros((n, 68, 2)), pose * 2
    ))  # fmt: skip
    metric.update(np.zeros((n, 4, 4, 3)), None, ctx)
    assert metric.compute() == pytest.approx(
        {"head_diversity": 7.0 / 3.0, "head_diversity_ref": 14.0 / 3.0}
    )
    assert metric.per_frame()["yaw"].shape == (n,)  # type: ignore[attr-defined]


def test_beat_align_score_known_values():
    beats = np.array([10, 35, 60, 85])
    assert mo.beat_align_score(beats, beats) == 1.0
    assert mo.beat_align_score(beats, beats + 3) == pytest.approx(np.exp(-0.5))
    rng = np.random.default_rng(0)
    motion = np.sort(rng.choice(100, 9, replace=False))
    assert mo.beat_align_score(beats, motion) == pytest.approx(_ba_reference(beats, motion))
    assert mo.beat_align_score(beats, np.array([], int)) == 0.0
    assert np.isnan(mo.beat_align_score(np.array([], int), beats))


def test_motion_beats_are_smoothed_velocity_minima():
    t = np.arange(100)
    velocity = 1.2 - np.cos(2 * np.pi * t / 20) + 0.3 * np.where(t % 2, 1.0, -1.0)  # jitter
    # the jitter has raw minima every other frame; sigma 5 leaves the period-20 minima
    assert mo.motion_beats(velocity).tolist() == [20, 40, 60, 80]
    assert len(mo.motion_beats(velocity, sigma=0.1)) > 40


def test_kinetic_velocity_units_and_gaps():
    speed = np.full(10, 0.02)  # 0.02 inter-ocular distances per frame
    points = _moving_face(speed)
    np.testing.assert_allclose(mo.kinetic_velocity(points), speed)
    pose = np.zeros((11, 3))
    pose[:, 0] = np.arange(11) * 2.0  # yaw 2 degrees per frame
    np.testing.assert_allclose(mo.kinetic_velocity(points, pose), speed + np.radians(2.0))
    points[4] = np.nan  # a missing face is interpolated from its neighbours
    np.testing.assert_allclose(mo.kinetic_velocity(points), speed)


def test_clip_beat_align_minima_on_beats_scores_one():
    n, period = 200, 25
    t = np.arange(n - 1)
    speed = 0.05 * (1.1 - np.cos(2 * np.pi * (t - 12) / period))  # minima at 12 + 25k
    points = _moving_face(speed)
    beats = np.arange(12, 300, period)  # beats past the clip end are dropped
    score, velocity = mo.clip_beat_align(points, beats)
    assert velocity.shape == (n - 1,)
    assert score == pytest.approx(1.0)
    late, _ = mo.clip_beat_align(points, beats + 4)
    assert late == pytest.approx(np.exp(-16 / 18), abs=1e-9)


def test_beat_align_metric_uses_audio_beats_and_reference(monkeypatch):
    n, period = 100, 25
    t = np.arange(n - 1)
    speed = 0.05 * (1.1 - np.cos(2 * np.pi * (t - 12) / period))  # minima at 12 + 25k
    speed_ref = 0.05 * (1.1 - np.cos(2 * np.pi * (t - 15) / period))  # 3 frames late
    seen = {}

    def fake_beats(audio, sample_rate, fps, kind):
        seen.update(rate=sample_rate, fps=fps, kind=kind)
        return np.array([12, 37, 62])  # clear of the smoothing's edge effects

    monkeypatch.setattr(mo, "audio_beats", fake_beats)
    metric = create_metric("beat_align", kind="onset")
    pred = _Track(_moving_face(speed), np.zeros((n, 3)))
    ref = _Track(_moving_face(speed_ref), np.zeros((n, 3)))
    ctx = EvalContext(fps=FPS, audio=np.zeros(64000, np.float32), pred_track=pred, ref_track=ref)
    metric.update(np.zeros((n, 4, 4, 3)), None, ctx)
    out = metric.compute()
    assert seen == {"rate": 16000, "fps": FPS, "kind": "onset"}
    assert out["beat_align"] == pytest.approx(1.0)
    assert out["beat_align_ref"] == pytest.approx(np.exp(-9 / 18))
    assert metric.per_frame()["motion_velocity"].shape == (n,)  # type: ignore[attr-defined]


@pytest.mark.slow  # kind="onset" runs librosa's peak picker, compiled by numba (~10 s)
def test_audio_beats_of_a_click_track():
    sr, seconds = 16000, 8
    audio = np.zeros(sr * seconds, np.float32)
    clicks = np.arange(0.2, seconds, 0.4)  # 150 BPM: one click every 10 frames at 25 fps
    noise = np.random.default_rng(0).standard_normal(160).astype(np.float32) * 0.5
    for c in clicks:
        audio[int(c * sr) : int(c * sr) + 160] = noise
    click_frames = np.round(clicks * FPS).astype(int)  # 5, 15, 25, ...
    beats = mo.audio_beats(audio, sr, FPS)
    assert len(beats) >= len(clicks) - 2
    assert set(np.diff(beats).tolist()) == {10}
    # librosa's onset envelope peaks one hop after a click: within 1 frame
    assert np.abs(beats[:, None] - click_frames[None]).min(1).max() <= 1
    onsets = mo.audio_beats(audio, sr, FPS, kind="onset")
    assert np.abs(onsets[:, None] - click_frames[None]).min(1).max() <= 1
