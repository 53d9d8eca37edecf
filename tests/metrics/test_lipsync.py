"""LMD, mouth-area IoU and mouth opening on synthetic 68-point faces with known answers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.metrics import lipsync as ls
from avatarlab.metrics.base import EvalContext, create_metric


def _ellipse(n: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """``n`` points clockwise (in image coordinates) from the right corner, over the top."""
    a = np.pi - np.arange(n) * 2 * np.pi / n
    return np.stack([cx - rx * np.cos(a), cy - ry * np.sin(a)], axis=-1)


def _face(gap: float = 0.0) -> np.ndarray:
    """A (68, 2) face: eye centres at x = -30 / +30 (IOD 60), nose top (0, 0), chin (0, 100),
    outer lips an ellipse around (0, 70), inner lips 'gap' pixels apart vertically."""
    p = np.zeros((68, 2))
    p[36:42] = [-30.0, 0.0]
    p[42:48] = [30.0, 0.0]
    p[27] = [0.0, 0.0]
    p[8] = [0.0, 100.0]
    p[48:60] = _ellipse(12, 0.0, 70.0, 25.0, 10.0)
    p[60:68] = _ellipse(8, 0.0, 70.0, 15.0, gap / 2)
    return p


@dataclass
class _Track:
    points: np.ndarray

    def landmarks68(self) -> np.ndarray:
        return self.points


def test_mouth_opening_is_gap_over_face_height():
    faces = np.stack([_face(0.0), _face(10.0), _face(25.0)])
    # inner pairs 61-67, 62-66, 63-65 sit at +-gap/2 * sin(45, 90, 135 deg)
    gaps = np.array([0.0, 10.0, 25.0]) * (2 * np.sin(np.pi / 4) + 1) / 3
    np.testing.assert_allclose(ls.mouth_opening(faces), gaps / 100.0, atol=1e-12)
    assert ls.mouth_opening(_face(10.0)).shape == ()
    assert np.isnan(ls.mouth_opening(np.full((1, 68, 2), np.nan)))[0]


def test_landmark_distance_translation_and_shape():
    ref = np.stack([_face(10.0)] * 2)
    pred = ref.copy()
    pred[:, 48:68] += [3.0, 4.0]
    np.testing.assert_allclose(ls.landmark_distance(pred, ref), [5.0, 5.0])
    np.testing.assert_allclose(ls.landmark_distance(pred, ref, center=True), [0.0, 0.0], atol=1e-12)
    # scaling the mouth about its centroid by 1.1 moves each point by 0.1 of its radius
    big = ref.copy()
    centroid = ref[:, 48:68].mean(1, keepdims=True)
    big[:, 48:68] = centroid + 1.1 * (ref[:, 48:68] - centroid)
    radius = np.linalg.norm(ref[0, 48:68] - centroid[0], axis=-1).mean()
    np.testing.assert_allclose(ls.landmark_distance(big, ref, center=True), 0.1 * radius)


def test_polygon_iou_known_values():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert ls.polygon_iou(square, square) == 1.0
    assert ls.polygon_iou(square, square + [5, 0]) == pytest.approx(1 / 3, abs=0.01)
    assert ls.polygon_iou(square, square + [20, 0]) == 0.0
    triangle = np.array([[0, 0], [10, 0], [0, 10]], float)
    assert ls.polygon_iou(triangle, square) == pytest.approx(0.5, abs=0.01)
    # two ellipses with the same centre: IoU = area ratio
    small, large = _ellipse(200, 0, 0, 20, 5), _ellipse(200, 0, 0, 20, 10)
    assert ls.polygon_iou(small, large) == pytest.approx(0.5, abs=0.01)
    assert np.isnan(ls.polygon_iou(square, np.full((4, 2), np.nan)))


def test_lmd_metric_reports_pixel_normalised_and_centred():
    ref = np.stack([_face(10.0)] * 4)
    pred = ref.copy()
    pred[:, 48:68] += [6.0, 8.0]  # 10 px off
    pred[3] = np.nan  # no face in the last predicted frame: left out
    metric = create_metric("lmd")
    metric.update(np.zeros((4, 8, 8, 3), np.uint8), None, EvalContext(
        pred_track=_Track(pred), ref_track=_Track(ref)
    ))  # fmt: skip
    out = metric.compute()
    assert out["lmd"] == pytest.approx(10.0)
    assert out["lmd_norm"] == pytest.approx(10.0 / 60.0)
    assert out["lmd_centered"] == pytest.approx(0.0, abs=1e-12)
    series = metric.per_frame()  # type: ignore[attr-defined]
    assert series["lmd"].shape == (4,) and np.isnan(series["lmd"][3])
    # a second batch with zero error: the mean is over frames (3 at 10 px, 4 at 0 px)
    metric.update(ref[:, :1], None, EvalContext(pred_track=ref, ref_track=ref))
    assert metric.compute()["lmd"] == pytest.approx(30.0 / 7.0)


@pytest.mark.parametrize("name", ["lmd", "ma"])
def test_track_metrics_mean_over_frames_not_batches(name: str) -> None:
    """Two batches of 8 frames (1 and 8 valid) give the same value as one batch of 16."""
    rng = np.random.default_rng(0)
    ref = np.stack([_face(10.0)] * 16)
    pred = ref + rng.normal(0.0, 2.0, ref.shape)
    pred[1:8] = np.nan  # the first batch has a single frame with a face
    frames = np.zeros((8, 8, 8, 3), np.uint8)
    split = create_metric(name)
    for sl in (slice(0, 8), slice(8, 16)):
        split.update(frames, None, EvalContext(pred_track=pred[sl], ref_track=ref[sl]))
    whole = create_metric(name)
    whole.update(np.zeros((16, 8, 8, 3), np.uint8), None,
                 EvalContext(pred_track=pred, ref_track=ref))  # fmt: skip
    out_split, out_whole = split.compute(), whole.compute()
    assert out_split.keys() == out_whole.keys()
    for k in out_whole:
        assert out_split[k] == pytest.approx(out_whole[k], rel=1e-12)
    # and it is the plain frame mean (not the mean of the two batch means)
    per_frame = ls.landmark_distance(pred, ref) if name == "lmd" else ls.mouth_iou(pred, ref)
    key = name
    assert out_whole[key] == pytest.approx(np.nanmean(per_frame))
    first, second = np.nanmean(per_frame[:8]), np.nanmean(per_frame[8:])
    assert out_split[key] != pytest.approx((first + second) / 2)


def test_ma_metric_is_mean_lip_iou():
    ref = np.stack([_face(10.0)] * 2)
    pred = ref.copy()
    pred[1, 48:60] = _ellipse(12, 0.0, 70.0, 25.0, 20.0)  # twice as tall: IoU ~ 0.5
    metric = create_metric("ma")
    metric.update(np.zeros((2, 8, 8, 3)), None, EvalContext(pred_track=pred, ref_track=ref))
    iou = metric.per_frame()["ma"]  # type: ignore[attr-defined]
    assert iou[0] == 1.0
    assert iou[1] == pytest.approx(0.5, abs=0.01)
    assert metric.compute()["ma"] == pytest.approx(np.mean(iou))


def test_metrics_refuse_mismatched_timelines_and_missing_tracks():
    metric = create_metric("lmd")
    ctx = EvalContext(pred_track=np.zeros((5, 68, 2)), ref_track=np.zeros((6, 68, 2)))
    with pytest.raises(OptionError, match="resample"):
        metric.update(np.zeros((5, 8, 8, 3)), None, ctx)
    with pytest.raises(OptionError, match="face track"):
        metric.update(np.zeros((5, 8, 8, 3)), None, EvalContext())
    assert np.isnan(create_metric("ma").compute()["ma"])


def test_lagged_correlation_finds_a_known_delay() -> None:
    from avatarlab.metrics.lipsync import best_lag, lagged_correlation

    real = np.sin(np.arange(120) / 3.0) + 0.1 * np.cos(np.arange(120) / 1.3)
    late = np.roll(real, 2)  # the generated series shows each frame 2 frames late
    assert best_lag(late, real) == 2 and best_lag(real, late) == -2
    assert lagged_correlation(late, real, 2) > 0.999 > lagged_correlation(late, real, 0)
    with_gaps = late.copy()
    with_gaps[[5, 40]] = np.nan  # missing frames are left out, not propagated
    assert np.isfinite(lagged_correlation(with_gaps, real, 2))
    assert np.isnan(lagged_correlation(real[:2], real[:2]))
