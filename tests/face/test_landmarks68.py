"""The 68-point convention: mesh_to_68 against dlib's shape predictor on real frames."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.face import MESH_TO_68, FaceDetector, face_mesh, landmarks68_dlib, mesh_to_68
from avatarlab.face.canonical import MIRROR
from avatarlab.face.landmarks68 import inter_ocular_distance

# Mirror partner of every iBUG point (subject's right <-> left).
IBUG_MIRROR = (
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)

# Mean error bound in inter-ocular distances. Measured (this table, 8 frames per clip):
# see the printed report; leave-one-clip-out errors were 0.030-0.057.
MAX_MEAN_ERROR_IOD = 0.08


def test_table_is_well_formed_and_left_right_symmetric():
    assert len(MESH_TO_68) == 68
    assert all(1 <= len(t) <= 2 and all(0 <= i < 468 for i in t) for t in MESH_TO_68)
    for k, entry in enumerate(MESH_TO_68):
        partner = MESH_TO_68[IBUG_MIRROR[k]]
        assert sorted(int(MIRROR[i]) for i in entry) == sorted(partner), k


def test_mesh_to_68_batches_and_means_pairs():
    mesh = np.random.default_rng(0).uniform(0, 500, (3, 478, 3)).astype(np.float32)
    out = mesh_to_68(mesh)
    assert out.shape == (3, 68, 2) and out.dtype == np.float32
    for k, entry in enumerate(MESH_TO_68):
        np.testing.assert_allclose(out[1, k], mesh[1, list(entry), :2].mean(0), rtol=1e-6)
    assert np.isnan(mesh_to_68(np.full((478, 3), np.nan))).all()


@pytest.mark.parametrize(
    "name", ["hdtf_aoc_8s.mp4", "talk_a.mp4", "talk_b.mp4", "talk_c.mp4", "expressions_silent.mp4"]
)
def test_mesh_68_agrees_with_dlib(clip, name, capsys):
    video = clip(name)
    detector = FaceDetector()
    errors_px, errors_iod = [], []
    for frame in video.frames[:: max(1, len(video) // 8)][:8]:
        box = detector.detect(frame)[0].box
        mesh = face_mesh(frame, box)
        ours = mesh_to_68(mesh)
        ref = landmarks68_dlib(frame, box)
        err = np.linalg.norm(ours - ref, axis=1).mean()
        errors_px.append(err)
        errors_iod.append(err / inter_ocular_distance(ref))
    px, iod = float(np.mean(errors_px)), float(np.mean(errors_iod))
    with capsys.disabled():
        print(f"\n  mesh_to_68 vs dlib on {name}: {px:.2f} px, {iod:.4f} inter-ocular")
    assert iod < MAX_MEAN_ERROR_IOD
