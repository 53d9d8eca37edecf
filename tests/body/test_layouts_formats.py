"""Layouts, OpenPose JSON and the DWPose layout on synthetic people (no models run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avatarlab.body import (
    BODY25_TO_COCO18,
    COCO_18_NAMES,
    FramePose,
    Person,
    from_openpose,
    mediapipe_to_body25,
    mesh_to_face70,
    openpose_filename,
    to_dwpose,
    to_openpose,
    write_dwpose,
    write_openpose,
)
from avatarlab.body.estimate import missing
from avatarlab.face import MESH_TO_68


def mp33() -> np.ndarray:
    """MediaPipe-like points: point i at (10 i, 1000 - 10 i), visibility 0.5 + i / 100."""
    i = np.arange(33, dtype=np.float32)
    return np.stack([10 * i, 1000 - 10 * i, 0.5 + i / 100], axis=1)


def test_body25_mapping_and_derived_points() -> None:
    src = mp33()
    body = mediapipe_to_body25(src)
    assert body.shape == (25, 3)
    np.testing.assert_allclose(body[0], src[0])  # nose
    np.testing.assert_allclose(body[1, :2], 0.5 * (src[11, :2] + src[12, :2]))  # neck
    assert body[1, 2] == pytest.approx(min(src[11, 2], src[12, 2]))
    np.testing.assert_allclose(body[8, :2], 0.5 * (src[23, :2] + src[24, :2]))  # mid-hip
    expected = {2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 9: 24, 10: 26, 11: 28}
    expected.update({12: 23, 13: 25, 14: 27, 15: 5, 16: 2, 17: 8, 18: 7, 19: 31, 21: 29})
    expected.update({22: 32, 24: 30})
    for dst, s in expected.items():
        np.testing.assert_allclose(body[dst], src[s], err_msg=f"BODY_25 {dst}")
    for toe in (20, 23):  # MediaPipe has no small toes
        assert np.isnan(body[toe, :2]).all() and body[toe, 2] == 0


def test_coco18_is_body25_without_midhip_and_feet() -> None:
    assert BODY25_TO_COCO18 == (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
    assert COCO_18_NAMES[8] == "RHip" and COCO_18_NAMES[17] == "LEar"


def test_face70_is_mesh68_plus_iris_pupils() -> None:
    mesh = np.random.default_rng(0).uniform(0, 500, (478, 3)).astype(np.float32)
    face = mesh_to_face70(mesh)
    assert face.shape == (70, 2)
    np.testing.assert_allclose(face[68], mesh[468, :2])  # right pupil
    np.testing.assert_allclose(face[69], mesh[473, :2])  # left pupil
    np.testing.assert_allclose(face[30], mesh[list(MESH_TO_68[30]), :2].mean(axis=0))


def person(pid: int = 0, hands: bool = True, face: bool = True) -> Person:
    body = mediapipe_to_body25(mp33())
    body[11] = (np.nan, np.nan, 0.0)  # a missing right ankle
    hand = np.concatenate([np.linspace(100, 300, 42).reshape(21, 2), np.ones((21, 1))], axis=1)
    f = np.concatenate([np.linspace(50, 150, 140).reshape(70, 2), np.ones((70, 1))], axis=1)
    return Person(
        pid,
        body,
        hand.astype(np.float32) if hands else None,
        missing(21) if hands else None,
        f.astype(np.float32) if face else None,
    )


def test_openpose_json_layout(tmp_path: Path) -> None:
    frame = FramePose(7, 0.28, (640, 1080), [person()])
    path = write_openpose(tmp_path / openpose_filename("clip", 7), frame)
    assert path.name == "clip_000000000007_keypoints.json"
    data = json.loads(path.read_text())
    assert data["version"] == 1.3
    (p,) = data["people"]
    assert list(p) == [
        "person_id",
        "pose_keypoints_2d",
        "face_keypoints_2d",
        "hand_left_keypoints_2d",
        "hand_right_keypoints_2d",
        "pose_keypoints_3d",
        "face_keypoints_3d",
        "hand_left_keypoints_3d",
        "hand_right_keypoints_3d",
    ]
    assert p["person_id"] == [-1]
    assert len(p["pose_keypoints_2d"]) == 75
    assert len(p["face_keypoints_2d"]) == 210
    assert len(p["hand_left_keypoints_2d"]) == len(p["hand_right_keypoints_2d"]) == 63
    assert all(p[k] == [] for k in list(p)[5:])
    assert p["pose_keypoints_2d"][33:36] == [0.0, 0.0, 0.0]  # the missing right ankle
    assert p["pose_keypoints_2d"][60:63] == [0.0, 0.0, 0.0]  # LSmallToe never exists
    assert p["hand_right_keypoints_2d"] == [0.0] * 63
    assert p["pose_keypoints_2d"][:3] == [0.0, 1000.0, 0.5]


def test_openpose_coco_parts_not_asked_for_and_ids() -> None:
    frame = FramePose(0, 0.0, (100, 100), [person(3, hands=False, face=False)])
    p = to_openpose(frame, "coco18", ids=True)["people"][0]
    assert len(p["pose_keypoints_2d"]) == 54
    assert p["face_keypoints_2d"] == [] and p["hand_left_keypoints_2d"] == []
    assert p["person_id"] == [3]
    assert to_openpose(FramePose(0, 0.0, (100, 100), []))["people"] == []


def test_openpose_round_trip() -> None:
    src = FramePose(0, 0.0, (640, 1080), [person()])
    back = from_openpose(to_openpose(src), (640, 1080)).people[0]
    ok = src.people[0].body[:, 2] > 0
    np.testing.assert_allclose(back.body[ok], src.people[0].body[ok], atol=1e-3)
    assert (back.body[~ok, 2] == 0).all()
    assert back.hand_left is not None and back.face is not None
    np.testing.assert_allclose(back.hand_left, src.people[0].hand_left, atol=1e-3)


def test_dwpose_layout(tmp_path: Path) -> None:
    a, b = person(0), person(1)
    frame = FramePose(0, 0.0, (640, 1000), [a, b])
    d = to_dwpose(frame)
    cand, subset = d["bodies"]["candidate"], d["bodies"]["subset"]
    assert cand.shape == (36, 2) and subset.shape == (2, 18)
    assert d["hands"].shape == (4, 21, 2) and d["faces"].shape == (2, 68, 2)
    np.testing.assert_allclose(cand[0], a.body[0, :2] / (640, 1000))
    assert subset[1, 0] == 18 and subset[0, 10] == -1  # right ankle missing -> -1
    assert (cand[10] == -1).all()
    np.testing.assert_allclose(d["hands"][0], a.hand_left[:, :2] / (640, 1000), rtol=1e-6)
    assert (d["hands"][2] == -1).all()  # right hands follow all left hands; a's is missing
    npz, js = write_dwpose(
        tmp_path / "c.npz", tmp_path / "c.json", [frame, FramePose(1, 0.04, (640, 1000), [])]
    )
    with np.load(npz) as z:
        assert z["candidate"].shape == (2, 36, 2) and z["people"].tolist() == [2, 0]
        assert (z["candidate"][1] == -1).all() and z["frame_size"].tolist() == [640, 1000]
    frames = json.loads(js.read_text())
    assert frames[1]["bodies"]["candidate"] == [] and len(frames[0]["faces"][0]) == 68
