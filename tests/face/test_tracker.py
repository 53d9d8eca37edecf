"""FaceTracker / FaceTrack on the shared clips and on edited sequences (cuts, gaps, two faces)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarlab.errors import MediaError, NoFaceError
from avatarlab.face import FaceDetector, FaceTrack, FaceTracker, TrackerOptions, track_video
from avatarlab.face import topology as T
from avatarlab.face.boxes import iou
from avatarlab.media import probe
from tests.conftest import TALKING_CLIPS


@pytest.mark.parametrize("name", TALKING_CLIPS)
def test_face_in_every_frame_of_talking_clips(data_dir, name):
    path = data_dir / "video" / name
    track = track_video(path)
    info = probe(path)
    assert len(track) == info.n_frames
    assert track.missing_frames == []
    assert track.require_all() is track
    assert track.frame_size == (info.width, info.height)
    assert np.isfinite(track.landmarks).all() and np.isfinite(track.pose).all()
    assert track.landmarks.shape == (len(track), 478, 3) and track.landmarks.dtype == np.float32
    # Timestamps come from the container: talk_a runs at 22.13 fps.
    np.testing.assert_allclose(np.diff(track.timestamps).mean(), 1 / info.fps, rtol=0.01)
    # Boxes enclose the landmarks and stay on the face from frame to frame.
    assert (track.boxes[:, 0] <= track.landmarks[:, :468, 0].min(1) + 1e-3).all()
    moves = [iou(a, b) for a, b in zip(track.boxes[:-1], track.boxes[1:], strict=True)]
    assert min(moves) > 0.7
    assert track.landmarks68().shape == (len(track), 68, 2)


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def test_cut_between_two_clips_redetects(clip):
    a = clip("talk_a.mp4").frames[:25]
    c = [_fit(f, (700, 700)) for f in clip("talk_c.mp4").frames[:25]]
    tracker = FaceTracker()
    states = [tracker.update(f, i / 25) for i, f in enumerate([*a, *c])]
    assert all(s is not None for s in states)
    detected = [i for i, s in enumerate(states) if s.detected]
    assert detected == [0, 25]
    truth = FaceDetector().detect(c[0])[0].box
    assert iou(states[25].box, truth) > 0.5
    assert iou(states[24].box, truth) < iou(states[25].box, truth)


def test_frames_without_face_are_nan_and_reported(clip, tmp_path):
    frames = list(clip("hdtf_aoc_8s.mp4").frames[:30])
    for i in range(10, 15):
        frames[i] = np.zeros_like(frames[i])
    track = FaceTracker().track(frames, fps=25.0)
    assert track.missing_frames == [10, 11, 12, 13, 14]
    assert np.isnan(track.boxes[10:15]).all() and np.isnan(track.landmarks[10:15]).all()
    assert np.isnan(track.pose[10:15]).all() and np.isfinite(track.landmarks[15:]).all()
    np.testing.assert_allclose(track.timestamps, np.arange(30) / 25.0)
    with pytest.raises(NoFaceError, match="10-14") as err:
        track.require_all("clip.mp4")
    assert err.value.frames == [10, 11, 12, 13, 14]

    path = track.save_json(tmp_path / "track.json")
    back = FaceTrack.from_json(path)
    assert back.frame_size == track.frame_size and len(back) == 30
    np.testing.assert_array_equal(back.found, track.found)
    np.testing.assert_allclose(back.landmarks, track.landmarks, atol=0.006, equal_nan=True)
    np.testing.assert_allclose(back.pose, track.pose, atol=0.006, equal_nan=True)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(MediaError):
        FaceTrack.from_json(tmp_path / "bad.json")


def test_keeps_the_same_person_when_a_larger_face_appears(clip):
    """Face A alone, then a larger face B beside it, a lost frame, B again: A is kept throughout."""
    small = [_fit(f, (360, 360)) for f in clip("talk_c.mp4").frames[:30]]
    big = [f for f in clip("hdtf_aoc_8s.mp4").frames[:30]]
    frames = []
    for i in range(30):
        canvas = np.full((512, 1000, 3), 90, np.uint8)
        canvas[76:436, 620:980] = small[i]
        if i >= 10:
            canvas[:, :512] = big[i]
        if i == 20:
            canvas[:] = 0
        frames.append(canvas)
    faces = FaceDetector().detect(frames[15])
    assert len(faces) == 2 and faces[0].box[0] < 500  # precondition: B (left) is the larger face
    track = FaceTracker().track(frames)
    assert track.missing_frames == [20]
    centres = (track.boxes[track.found, 0] + track.boxes[track.found, 2]) / 2
    assert (centres > 620).all()  # always face A on the right


def test_reidentify_after_a_cut_by_identity(clip):
    """After a cut that moves both people, the identity option picks the first person again."""
    a = [_fit(f, (360, 360)) for f in clip("talk_c.mp4").frames[:12]]
    b = [_fit(f, (360, 360)) for f in clip("talk_a.mp4").frames[:12]]
    frames = []
    for i in range(12):
        canvas = np.full((400, 800, 3), 90, np.uint8)
        if i < 6:
            canvas[20:380, 20:380] = a[i]  # A alone on the left
        else:
            canvas[20:380, 20:380] = b[i]  # cut: B where A was, A on the right
            canvas[20:380, 420:780] = a[i]
        frames.append(canvas)
    plain = FaceTracker().track(frames)
    smart = FaceTracker(TrackerOptions(reidentify=True)).track(frames)
    assert not plain.missing_frames and not smart.missing_frames
    cx = (smart.boxes[:, 0] + smart.boxes[:, 2]) / 2
    assert (cx[:6] < 400).all() and (cx[6:] > 400).all()


def test_smoothing_cuts_jitter_without_lag(clip):
    base = clip("hdtf_aoc_8s.mp4").frames[0]
    rng = np.random.default_rng(0)
    times = np.arange(30) / 25.0

    def run(frames, smooth: bool) -> FaceTrack:
        return FaceTracker(TrackerOptions(smooth=smooth)).track(zip(frames, times, strict=True))

    # A still face with sensor-like noise: smoothing removes most frame-to-frame jitter.
    still = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in times]

    def jitter(track: FaceTrack) -> float:
        return float(np.sqrt((np.diff(track.landmarks[5:, :468, :2], 2, axis=0) ** 2).mean()))

    assert jitter(run(still, True)) < 0.4 * jitter(run(still, False))
    # A 1.5 Hz, 15 px sideways sway: the smoothed face follows within about a pixel.
    shift = 15 * np.sin(2 * np.pi * 1.5 * times)
    moving = [
        cv2.warpAffine(
            base, np.float32([[1, 0, d], [0, 1, 0]]), (512, 512), borderMode=cv2.BORDER_REPLICATE
        )
        for d in shift
    ]
    x = run(moving, True).landmarks[:, list(T.NOSE_BRIDGE), 0].mean(1)
    assert np.abs((x - x.mean()) - (shift - shift.mean()))[5:].mean() < 1.0
    # Speech: the smoothed lip opening is in phase with the raw one.
    frames = clip("hdtf_aoc_8s.mp4").frames[:60]
    t60 = np.arange(60) / 25.0
    raw = FaceTracker(TrackerOptions(smooth=False)).track(zip(frames, t60, strict=True))
    smooth = FaceTracker().track(zip(frames, t60, strict=True))

    def opening(track: FaceTrack) -> np.ndarray:
        lm = track.landmarks
        return lm[:, T.LOWER_LIP_INNER, 1] - lm[:, T.UPPER_LIP_INNER, 1]

    r, s = opening(raw), opening(smooth)
    lags = range(-3, 4)
    corr = [np.corrcoef(r[3:-3], np.roll(s, -k)[3:-3])[0, 1] for k in lags]
    assert list(lags)[int(np.argmax(corr))] == 0
    assert max(corr) > 0.98
    assert np.abs(r - s).mean() < 1.0
