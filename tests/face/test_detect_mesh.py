"""Detection and the 478-point mesh on the shared portraits and synthetic frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.face import FaceDetector, analyze_image, face_mesh
from avatarlab.face.topology import LEFT_IRIS_CENTER, NOSE_TIP, RIGHT_IRIS_CENTER
from avatarlab.media import read_image

PORTRAITS = ["man_green.jpg", "woman_photo.jpg", "cartoon_boy.png", "painting.jpg"]


@pytest.mark.parametrize("name", PORTRAITS)
def test_portraits_have_one_analysed_face(data_dir, name):
    image = read_image(data_dir / "image" / name)
    faces = analyze_image(image)
    assert len(faces) >= 1
    face = faces[0]
    h, w = image.shape[:2]
    assert face.score > 0.8
    assert face.mesh is not None and face.mesh.shape == (478, 3) and face.mesh.dtype == np.float32
    assert np.isfinite(face.mesh).all()
    # The mesh lies on the detected face: nose tip inside the box, irises inside the mesh's extent.
    x0, y0, x1, y1 = face.box
    nx, ny = face.mesh[NOSE_TIP, :2]
    assert x0 < nx < x1 and y0 < ny < y1
    assert face.mesh[:, 0].min() >= 0 and face.mesh[:, 0].max() <= w
    right, left = face.mesh[RIGHT_IRIS_CENTER, 0], face.mesh[LEFT_IRIS_CENTER, 0]
    assert right < left  # the subject's right eye is on the image's left
    assert face.landmarks68 is not None and face.landmarks68.shape == (68, 2)
    assert face.pose is not None and abs(face.pose.yaw) < 30 and abs(face.pose.roll) < 30


def test_full_range_model_finds_painting_face(data_dir):
    image = read_image(data_dir / "image" / "painting.jpg")
    faces = FaceDetector("full").detect(image)
    assert faces and faces[0].score > 0.5


def test_small_face_in_a_large_frame_found_by_auto_tiles(data_dir):
    """A 35-px face in a 1280x960 frame: both models miss it whole-frame; auto's tiles find it."""
    portrait = read_image(data_dir / "image" / "man_green.jpg")
    small = cv2.resize(portrait, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    canvas = np.full((960, 1280, 3), (60, 120, 60), np.uint8)
    canvas[500 : 500 + small.shape[0], 800 : 800 + small.shape[1]] = small
    assert FaceDetector("short").detect(canvas) == []
    faces = FaceDetector("auto").detect(canvas)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 880 < (x0 + x1) / 2 < 945 and 520 < (y0 + y1) / 2 < 575  # where the face was pasted
    mesh = face_mesh(canvas)
    assert mesh is not None and x0 - 5 < mesh[NOSE_TIP, 0] < x1 + 5


def test_detections_sorted_by_area_with_keypoints(data_dir):
    portrait = read_image(data_dir / "image" / "woman_photo.jpg")
    half = cv2.resize(portrait, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((720, 1300, 3), np.uint8)
    canvas[:, :720] = portrait
    canvas[100 : 100 + half.shape[0], 750 : 750 + half.shape[1]] = half
    faces = FaceDetector().detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > 1.5 * faces[1].area
    big = faces[0]
    assert big.keypoints.shape == (6, 2)
    # right eye (image left) left of the left eye; nose below the eyes, mouth below the nose
    assert big.keypoints[0, 0] < big.keypoints[1, 0]
    assert big.keypoints[2, 1] > big.keypoints[:2, 1].max()
    assert big.keypoints[3, 1] > big.keypoints[2, 1]


def test_black_frame_has_no_face():
    black = np.zeros((360, 480, 3), np.uint8)
    assert FaceDetector().detect(black) == []
    assert face_mesh(black) is None
    assert analyze_image(black) == []


def test_frames_must_be_rgb_uint8():
    with pytest.raises(OptionError, match="uint8"):
        FaceDetector().detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(OptionError, match=r"\(H, W, 3\)"):
        FaceDetector().detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(OptionError):
        FaceDetector("tiny")  # type: ignore[arg-type]
