"""Head pose: exact recovery on synthetic projections, mirror/rotation properties on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarlab.face import face_mesh, head_pose
from avatarlab.face.canonical import CANONICAL_FACE_3D
from avatarlab.face.draw import pose_rotation
from avatarlab.face.pose import HeadPose, camera_matrix, rotation_to_angles


def _project(pose: HeadPose, size=(640, 480), depth=60.0) -> np.ndarray:
    """The canonical face rotated by ``pose`` and projected by the pinhole camera used by head_pose."""
    rot = pose_rotation(pose)
    pts = CANONICAL_FACE_3D @ rot.T + np.array([3.0, -2.0, depth])
    cam = camera_matrix(size)
    uv = pts @ cam.T
    mesh = np.zeros((478, 3), np.float32)
    mesh[:468, :2] = uv[:, :2] / uv[:, 2:]
    return mesh


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"),
    [(0, 0, 0), (30, 0, 0), (-35, 10, 0), (0, 20, 0), (0, -15, 12), (25, -10, -20)],
)
def test_recovers_known_rotation(yaw, pitch, roll):
    pose = head_pose(_project(HeadPose(yaw, pitch, roll)), (640, 480))
    assert pose is not None
    np.testing.assert_allclose([pose.yaw, pose.pitch, pose.roll], [yaw, pitch, roll], atol=0.3)


def test_sign_conventions_on_the_projection():
    # Turning to the subject's left moves the nose tip (index 1) to the image's right.
    left = _project(HeadPose(20, 0, 0))
    front = _project(HeadPose(0, 0, 0))
    assert left[1, 0] > front[1, 0]
    # Looking up moves the nose up (smaller y); clockwise roll lowers the subject's left eye (263).
    assert _project(HeadPose(0, 20, 0))[1, 1] < front[1, 1]
    tilted = _project(HeadPose(0, 0, 15))
    assert tilted[263, 1] - tilted[33, 1] > front[263, 1] - front[33, 1] + 5


def test_rotation_angles_round_trip():
    for angles in [(10.0, -20.0, 30.0), (-40.0, 5.0, -8.0)]:
        back = rotation_to_angles(pose_rotation(HeadPose(*angles)))
        np.testing.assert_allclose([back.yaw, back.pitch, back.roll], angles, atol=1e-9)


def test_mirrored_frames_negate_yaw_and_roll(clip):
    """MediaPipe's mesh is not exactly mirror-equivariant: up to 2.5 deg yaw, 3 deg pitch measured."""
    video = clip("talk_a.mp4")
    size = video.frames.shape[2], video.frames.shape[1]
    yaw_sums = []
    for frame in video.frames[::40]:
        p = head_pose(face_mesh(frame), size)
        q = head_pose(face_mesh(np.ascontiguousarray(frame[:, ::-1])), size)
        assert p is not None and q is not None
        assert p.yaw > 5 and q.yaw < -5  # talk_a looks to the subject's left throughout
        assert abs(p.yaw + q.yaw) < 3.5 and abs(p.roll + q.roll) < 1.5
        assert abs(p.pitch - q.pitch) < 3.5
        yaw_sums.append(p.yaw + q.yaw)
    assert abs(np.mean(yaw_sums)) < 1.5


def test_image_rotation_shows_as_roll(clip):
    frame = clip("hdtf_aoc_8s.mp4").frames[0]
    h, w = frame.shape[:2]
    base = head_pose(face_mesh(frame), (w, h))
    # cv2's positive angle turns the image counter-clockwise; -15 turns it clockwise.
    turned = cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), -15, 1.0), (w, h))
    pose = head_pose(face_mesh(turned), (w, h))
    assert base is not None and pose is not None
    assert abs((pose.roll - base.roll) - 15.0) < 2.5


def test_yaw_follows_the_nose_on_a_talking_clip(clip):
    """On hdtf_aoc_8s the head turns about +-8 degrees; yaw tracks the nose's offset in the face."""
    video = clip("hdtf_aoc_8s.mp4")
    yaws, offsets = [], []
    for frame in video.frames[::5]:
        mesh = face_mesh(frame)
        yaws.append(head_pose(mesh, (512, 512)).yaw)
        offsets.append((mesh[1, 0] - mesh[[234, 454], 0].mean()) / (mesh[454, 0] - mesh[234, 0]))
    yaws_a = np.array(yaws)
    assert np.ptp(yaws_a) > 10
    assert np.corrcoef(yaws_a, offsets)[0, 1] > 0.9
    assert (
        np.sign(yaws_a[np.abs(yaws_a) > 4]) == np.sign(np.array(offsets)[np.abs(yaws_a) > 4])
    ).all()
