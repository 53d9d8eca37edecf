"""AKD, APD and AED: known values on synthetic tracks, properties on tracked real frames
(shifted, rotated and time-lagged copies of expressions_silent.mp4), and the metrics
through ``evaluate`` reading the runner's own tracks."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.face import FaceTrack, FaceTracker
from avatarlab.face.canonical import CANONICAL_FACE_3D, RIGID_POINTS
from avatarlab.metrics import reenactment as R
from avatarlab.metrics.base import EvalContext, create_metric

N_FRAMES = 40


def _score(name: str, pred: FaceTrack, ref: FaceTrack) -> dict[str, float]:
    metric = create_metric(name)
    empty = np.empty((len(ref), 0, 0, 3), np.uint8)
    metric.update(empty, empty, EvalContext(pred_track=pred, ref_track=ref))
    return metric.compute()


def _lagged(track: FaceTrack, lag: int, n: int) -> FaceTrack:
    """Frames ``lag .. lag + n`` of ``track`` as a track of n frames."""
    part = slice(lag, lag + n)
    return FaceTrack(
        track.timestamps[:n],
        track.found[part],
        track.boxes[part],
        track.landmarks[part],
        track.pose[part],
        track.frame_size,
    )


# -- known values ------------------------------------------------------------------------
def test_keypoint_distance_is_pixels_over_inter_ocular_distance():
    ref = np.zeros((2, 68, 2))
    ref[:, 42:48] = [60.0, 0.0]  # eye centres 60 px apart
    pred = ref + [3.0, 4.0]
    pred[1] = np.nan
    px, norm = R.keypoint_distance(pred, ref)
    np.testing.assert_allclose(px[:1], [5.0])
    np.testing.assert_allclose(norm[:1], [5.0 / 60.0])
    assert np.isnan(px[1]) and np.isnan(norm[1])


def test_pose_distance_wraps_at_180_degrees():
    diff = R.pose_distance(np.array([[179.0, 10.0, -3.0]]), np.array([[-179.0, 4.0, 3.0]]))
    np.testing.assert_allclose(diff, [[2.0, 6.0, 6.0]])


def _similar(points: np.ndarray, angle_deg: float, scale: float, shift: tuple) -> np.ndarray:
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return scale * points @ rot.T + np.array(shift)


def test_expression_distance_ignores_pose_and_measures_the_expression_change():
    canon = np.vstack([CANONICAL_FACE_3D, np.zeros((10, 3))])  # 478 points, iris unused
    moving = np.setdiff1d(np.arange(468), RIGID_POINTS)
    delta = np.zeros_like(canon)
    delta[moving, 1] = 0.5  # non-rigid points 0.5 cm down: the rigid fit does not move
    poses = [(0.0, 20.0, (256, 256, 0)), (15.0, 25.0, (240, 250, 5)), (-10.0, 18.0, (270, 260, 0))]
    ref = np.stack([_similar(canon, *p) for p in poses])
    pred = np.stack([_similar(canon + (k > 0) * delta, *p) for k, p in enumerate(poses)])
    # same expression in every pose: zero; the change of frames 1, 2 shows exactly
    np.testing.assert_allclose(R.expression_distance(ref, ref)[1:], 0.0, atol=1e-9)
    want = 0.5 * len(moving) / 468 / R.CANONICAL_IOD
    got = R.expression_distance(pred, ref)
    assert np.isnan(got[0])  # the anchor frame
    np.testing.assert_allclose(got[1:], want, rtol=1e-9)
    # the anchor is the first frame where both faces were found
    pred[0] = np.nan
    got = R.expression_distance(pred, ref)
    assert np.isnan(got[:2]).all() and abs(got[2]) < 1e-9
    assert np.isnan(R.expression_distance(np.full_like(ref, np.nan), ref)).all()


def test_tracks_of_different_length_or_missing_are_refused():
    track = FaceTrack.empty((64, 64))
    longer = FaceTrack(
        np.zeros(1),
        np.ones(1, bool),
        np.zeros((1, 4), np.float32),
        np.zeros((1, 478, 3), np.float32),
        np.zeros((1, 3), np.float32),
        (64, 64),
    )
    for name in ("akd", "apd", "aed"):
        with pytest.raises(OptionError, match="resample the prediction"):
            _score(name, longer, track)
        with pytest.raises(OptionError, match="needs the reference face track"):
            create_metric(name).update(np.empty((0, 0, 0, 3)), None, EvalContext(pred_track=track))


# -- tracked real frames -----------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(data_dir: Path) -> list[np.ndarray]:
    from avatarlab.media import iter_frames

    path = data_dir / "video" / "expressions_silent.mp4"
    return [f for f, _ in itertools.islice(iter_frames(path), 0, 2 * N_FRAMES)]


def _track(frames: list[np.ndarray]) -> FaceTrack:
    with FaceTracker() as tracker:
        return tracker.track(iter(frames))


def _warp(frames: list[np.ndarray], dx: float = 0.0, angle: float = 0.0) -> list[np.ndarray]:
    """Frames moved ``dx`` px right, or turned ``angle`` degrees (counter-clockwise)."""
    h, w = frames[0].shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[0, 2] += dx
    return [cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT) for f in frames]


@pytest.fixture(scope="module")
def tracks(clip: list[np.ndarray]) -> dict[str, FaceTrack]:
    first = clip[:N_FRAMES]
    out = {"real": _track(first), "again": _track(first), "long": _track(clip)}
    for dx in (4, 12):
        out[f"shift{dx}"] = _track(_warp(first, dx=dx))
    for angle in (3, 8):
        out[f"rot{angle}"] = _track(_warp(first, angle=angle))
    return out


def test_identical_frames_score_zero(tracks):
    for name in ("akd", "apd", "aed"):
        values = _score(name, tracks["again"], tracks["real"])
        assert values and all(v == 0.0 for v in values.values()), (name, values)


def test_akd_grows_with_a_shift_and_reads_it_in_pixels(tracks):
    real = tracks["real"]
    akd = [_score("akd", tracks[k], real) for k in ("again", "shift4", "shift12")]
    assert akd[0]["akd"] < akd[1]["akd"] < akd[2]["akd"]
    assert abs(akd[1]["akd_px"] - 4.0) < 0.3 and abs(akd[2]["akd_px"] - 12.0) < 0.5


def test_apd_grows_with_a_rotation_and_reads_roll_in_degrees(tracks):
    real = tracks["real"]
    apd = [_score("apd", tracks[k], real) for k in ("again", "rot3", "rot8")]
    assert apd[0]["apd"] < apd[1]["apd"] < apd[2]["apd"]
    assert abs(apd[1]["apd_roll"] - 3.0) < 0.6 and abs(apd[2]["apd_roll"] - 8.0) < 1.0


def test_aed_grows_with_the_expression_lag_and_barely_sees_pose(tracks):
    real, long = tracks["real"], tracks["long"]
    aed = [_score("aed", _lagged(long, lag, N_FRAMES), real)["aed"] for lag in (0, 2, 5, 10, 20)]
    assert aed[0] == 0.0 and all(a < b for a, b in itertools.pairwise(aed)), aed
    moved = [_score("aed", tracks[k], real)["aed"] for k in ("shift12", "rot8")]
    assert max(moved) < 0.5 * aed[3], (
        moved,
        aed,
    )  # a 12 px shift or 8 deg turn < 10 frames' change


def test_eval_reuses_the_runner_tracks(clip, tmp_path, monkeypatch):
    from avatarlab.media import write_video
    from avatarlab.metrics.evaluate import evaluate

    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "empty_cache"))
    frames = clip[:20]
    for side, video in (("ref", frames), ("pred", _warp(frames, dx=12))):
        (tmp_path / side).mkdir()
        write_video(tmp_path / side / "a.mp4", video, 25, crf=12)
    run = evaluate(
        tmp_path / "pred",
        tmp_path / "ref",
        metrics=["akd", "apd", "aed", "lpips"],
        out_dir=tmp_path / "out",
        jobs=1,
    )
    (clip_res,) = run.clips
    assert not clip_res.errors
    assert 10.0 < run.value("a", "akd_px") < 14.0 and run.value("a", "apd") < 1.0
    assert run.value("a", "aed") < 0.02
    assert "crops" not in clip_res.timings  # no second decoding pass
    (skip,) = run.skipped
    assert skip.metric == "lpips" and skip.file == "alexnet-owt-7be5be79.pth, alex.pth"
