"""CSIM: ArcFace alignment and input layout, dlib embeddings on real faces, the metric's plumbing."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarlab.errors import MissingWeightsError, NoFaceError, OptionError
from avatarlab.media import iter_frames
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.identity import (
    ARCFACE_R50,
    ARCFACE_TEMPLATE,
    ArcFaceEmbedder,
    arcface_crop,
    cosine,
    csim,
    five_points,
    get_embedder,
    sampled_frames,
)


def _landmarks_from_five(five: np.ndarray) -> np.ndarray:
    """68 points whose eye means, nose tip and mouth corners are the given 5 points."""
    pts = np.zeros((68, 2))
    pts[36:42] = five[0]
    pts[42:48] = five[1]
    pts[30], pts[48], pts[54] = five[2], five[3], five[4]
    return pts


def test_arcface_alignment_maps_points_onto_the_template() -> None:
    angle, scale, shift = np.deg2rad(12.0), 2.3, np.array([140.0, 95.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    five = ARCFACE_TEMPLATE.astype(np.float64) @ rot.T + shift  # the template placed in a frame
    frame = np.zeros((480, 520, 3), np.uint8)
    for k, (x, y) in enumerate(five):
        cv2.circle(frame, (round(x), round(y)), 4, (40 * (k + 1), 255, 0), -1)
    landmarks = _landmarks_from_five(five)
    np.testing.assert_allclose(five_points(landmarks), five, atol=1e-4)
    crop = arcface_crop(frame, landmarks)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    for k, (x, y) in enumerate(ARCFACE_TEMPLATE):  # each dot lands on its template point
        assert crop[round(y), round(x), 0] == pytest.approx(40 * (k + 1), abs=8)


class _Session:
    def __init__(self) -> None:
        self.blobs: list[np.ndarray] = []

    def run(self, outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        blob = feeds["input.1"]
        self.blobs.append(blob)
        return [blob.reshape(len(blob), -1)[:, :512]]


def test_arcface_input_is_rgb_nchw_normalised() -> None:
    embedder = object.__new__(ArcFaceEmbedder)  # skip loading a model file
    embedder.session, embedder.input_name = _Session(), "input.1"  # type: ignore[assignment]
    crops = np.zeros((2, 112, 112, 3), np.uint8)
    crops[..., 0], crops[..., 2] = 255, 0
    out = embedder.embed_crops(crops)
    blob = embedder.session.blobs[0]  # type: ignore[attr-defined]
    assert blob.shape == (2, 3, 112, 112) and blob.dtype == np.float32
    assert (blob[:, 0] == 1.0).all() and (blob[:, 2] == -1.0).all()  # (x - 127.5) / 127.5, RGB
    assert out.shape == (2, 512)


def test_missing_arcface_weights(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        ArcFaceEmbedder(tmp_path)
    assert ARCFACE_R50.filename in str(err.value) and "buffalo_l.zip" in str(err.value)
    with pytest.raises(OptionError):
        create_metric("csim", backend="facenet")
    metric = create_metric("csim", backend="arcface")
    assert metric.requires.weights == (ARCFACE_R50.name,) and metric.requires.face_track


@pytest.fixture(scope="module")
def faces(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Frames and 68 landmarks (MediaPipe mesh -> iBUG): one person in two clips, another person."""
    from avatarlab.face import analyze_image

    out = {}
    for name, clip, index in (
        ("aoc", "hdtf_aoc_8s.mp4", 10),
        ("aoc2", "talk_c.mp4", 10),
        ("other", "talk_a.mp4", 10),
    ):
        frames = (f for f, _ in iter_frames(data_dir / "video" / clip))
        frame = next(itertools.islice(frames, index, None))
        found = analyze_image(frame)
        assert found and found[0].landmarks68 is not None
        out[name] = (frame, np.asarray(found[0].landmarks68))
    return out


def test_dlib_csim_separates_identities(faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    embedder = get_embedder("dlib")
    (a, la), (b, lb), (c, lc) = faces["aoc"], faces["aoc2"], faces["other"]
    same_frame = csim(a, a, la[None], la[None], embedder)[0]
    blurred = csim(cv2.GaussianBlur(a, (5, 5), 1.5), a, la[None], la[None], embedder)[0]
    same_person = csim(b, a, lb[None], la[None], embedder)[0]
    other_person = csim(c, a, lc[None], la[None], embedder)[0]
    assert same_frame == pytest.approx(1.0, abs=1e-6)
    assert min(blurred, same_person) > 0.95 and other_person < 0.9


class _Track:
    def __init__(self, landmarks: np.ndarray) -> None:
        self._landmarks = landmarks

    def landmarks68(self) -> np.ndarray:
        return self._landmarks


def test_metric_skips_frames_without_faces(faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    a, la = faces["aoc"]
    pred = np.stack([a, cv2.GaussianBlur(a, (5, 5), 1.5), a])
    pred_lm = np.stack([la, la, np.full_like(la, np.nan)])
    metric = create_metric("csim", sample_s=0)  # every frame
    ctx = EvalContext(pred_track=_Track(pred_lm), ref_track=_Track(la[None]))
    metric.update(pred, a[None], ctx)  # one reference frame: a source portrait
    values = metric.per_frame()["csim"]  # type: ignore[attr-defined]
    assert values[0] == pytest.approx(1.0, abs=1e-6) and math.isnan(values[2])
    out = metric.compute()
    assert out["csim"] == pytest.approx(np.mean(values[:2])) and out["csim_missing_frames"] == 1.0
    with pytest.raises(NoFaceError, match="face track"):
        metric.update(pred, a[None], EvalContext())
    assert math.isnan(cosine(np.zeros(3), np.ones(3)))


def test_sampled_frames_follow_the_clip_not_the_batch() -> None:
    masks = [sampled_frames(start, 8, 25) for start in range(0, 64, 8)]
    assert np.flatnonzero(np.concatenate(masks)).tolist() == [0, 25, 50]
    assert sampled_frames(3, 4, 1).all() and sampled_frames(3, 4, 0).all()


def test_metric_scores_one_frame_per_sample_s(
    faces: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    a, la = faces["aoc"]
    c, lc = cv2.GaussianBlur(a, (5, 5), 1.5), la
    metric = create_metric("csim", sample_s=0.12)  # 3 frames at 25 fps: frames 0, 3
    with pytest.raises(OptionError, match="sample_s"):
        create_metric("csim", sample_s=-1.0)
    series = []
    for pred, lm in (([a, c], [la, lc]), ([a, c], [la, np.full_like(la, np.nan)])):
        ctx = EvalContext(
            fps=25.0, pred_track=_Track(np.stack(lm)), ref_track=_Track(np.stack([la, la]))
        )
        metric.update(np.stack(pred), np.stack([a, a]), ctx)
        series.append(metric.per_frame()["csim"])  # type: ignore[attr-defined]
    values = np.concatenate(series)
    assert np.isfinite(values).tolist() == [True, False, False, False]  # frame 3 has no face
    assert values[0] == pytest.approx(1.0, abs=1e-6)
    out = metric.compute()
    assert out["csim"] == pytest.approx(values[0]) and out["csim_missing_frames"] == 1.0
    assert "every 0.12 s" in metric.conventions


@pytest.mark.slow  # 2 x 100 dlib descriptors and face tracking of 200 frames
def test_sampled_csim_stays_within_0_01_of_every_frame(data_dir: Path) -> None:
    """Old convention (every frame) vs new (one frame per second) on a real degraded clip.

    Tolerance 0.01: identity barely moves within a clip (per-frame std 0.002-0.01 on the
    shared clips, even between two people), so 1-in-25 sampling moved the clip value by
    at most 0.005 (worst sampling phase 0.009) on five real pairs.
    """
    from avatarlab.face.track import FaceTracker

    ref = np.stack(
        [f for f, _ in itertools.islice(iter_frames(data_dir / "video" / "hdtf_aoc_8s.mp4"), 50)]
    )
    pred = np.empty_like(ref)
    for i, frame in enumerate(ref):
        small = cv2.resize(
            cv2.GaussianBlur(frame, (0, 0), 2.0), (128, 128), interpolation=cv2.INTER_AREA
        )
        ok, data = cv2.imencode(
            ".jpg", cv2.resize(small, frame.shape[1::-1]), [cv2.IMWRITE_JPEG_QUALITY, 30]
        )
        pred[i] = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    tracks = []
    for frames in (pred, ref):
        with FaceTracker() as tracker:
            tracks.append(tracker.track(frames))
    ctx = EvalContext(fps=25.0, pred_track=tracks[0], ref_track=tracks[1])
    every = create_metric("csim", sample_s=0)
    sampled = create_metric("csim")
    for metric in (every, sampled):
        metric.update(pred, ref, ctx)
    all_frames = every.per_frame()["csim"]  # type: ignore[attr-defined]
    assert np.isfinite(all_frames).all() and all_frames.mean() < 0.999  # degraded, not a copy
    new = sampled.compute()["csim"]
    assert new == pytest.approx(all_frames[::25].mean(), abs=1e-9)  # same kernel, fewer frames
    assert abs(new - every.compute()["csim"]) < 0.01
