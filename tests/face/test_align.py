"""Alignment, square crops and paste-back on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.face import (
    align_face,
    box_crop,
    crop_box,
    face_mesh,
    mesh_to_68,
    paste_back,
)
from avatarlab.face import topology as T
from avatarlab.face.align import eyes_and_mouth
from avatarlab.face.boxes import apply_affine


@pytest.fixture(scope="module")
def frame_and_mesh(clip):
    frame = clip("talk_a.mp4").frames[10]
    return frame, face_mesh(frame)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_aligned_eyes_are_level_and_centred(frame_and_mesh):
    frame, mesh = frame_and_mesh
    h, w = frame.shape[:2]
    # Tilt the frame by 20 degrees so alignment has something to undo.
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    tilted = cv2.warpAffine(frame, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    tilted_mesh = face_mesh(tilted)
    for size in (512, 128):
        aligned = align_face(tilted, tilted_mesh, size=size, margin=0.3)
        assert aligned.image.shape == (size, size, 3) and aligned.image.dtype == np.uint8
        right, left, mouth = (
            apply_affine(aligned.matrix, p[None])[0] for p in eyes_and_mouth(tilted_mesh)
        )
        assert abs(right[1] - left[1]) < 0.03 * size  # eyes level
        assert right[0] < size / 2 < left[0]
        assert abs((right[0] + left[0]) / 2 - size / 2) < 0.05 * size
        assert mouth[1] > right[1]
        # The crop really shows that face: the mesh of the crop matches the mapped mesh.
        crop_mesh = face_mesh(aligned.image)
        mapped = apply_affine(aligned.matrix, tilted_mesh[:, :2])
        assert np.abs(crop_mesh[:, :2] - mapped).mean() < 0.02 * size


def test_68_and_478_points_give_similar_alignment(frame_and_mesh):
    frame, mesh = frame_and_mesh
    a = align_face(frame, mesh, 256).matrix
    b = align_face(frame, mesh_to_68(mesh), 256).matrix
    centre = np.array([[mesh[:, 0].mean(), mesh[:, 1].mean()]])
    assert np.linalg.norm(apply_affine(a, centre) - apply_affine(b, centre)) < 0.05 * 256
    assert abs(np.linalg.det(a[:, :2]) / np.linalg.det(b[:, :2]) - 1) < 0.15


@pytest.mark.parametrize(("size", "margin"), [(512, 0.3), (256, 0.5)])
def test_paste_back_round_trip(frame_and_mesh, size, margin):
    frame, mesh = frame_and_mesh
    aligned = align_face(frame, mesh, size=size, margin=margin)
    out = paste_back(frame, aligned.image, aligned.matrix)
    assert out.shape == frame.shape and out.dtype == np.uint8
    inside = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(mesh[list(T.FACE_OVAL), :2]).astype(np.int32)], 1)
    psnr = _psnr(out[inside > 0], frame[inside > 0])
    assert psnr > (40.0 if size >= 512 else 30.0)
    # Far outside the crop square, nothing changes, bit for bit.
    corners = apply_affine(aligned.inverse, np.array([[0, 0], [size, size]], float))
    far = np.ones(frame.shape[:2], bool)
    x0, y0 = np.floor(corners.min(0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    far[max(y0, 0) : y1, max(x0, 0) : x1] = False
    assert np.array_equal(out[far], frame[far])


def test_paste_back_edit_blends_without_seam(frame_and_mesh):
    frame, mesh = frame_and_mesh
    aligned = align_face(frame, mesh, size=256)
    grey = np.full_like(aligned.image, 128)
    out = paste_back(frame, grey, aligned.matrix, feather=0.1).astype(np.float64)
    nose = np.round(mesh[T.NOSE_TIP, :2]).astype(int)
    assert np.abs(out[nose[1], nose[0]] - 128).max() <= 1  # centre fully replaced
    # The blend weight, seen by pasting white onto black, ramps smoothly from 0 to 1.
    black = np.zeros_like(frame)
    weight = paste_back(black, np.full_like(grey, 255), aligned.matrix)[..., 0] / 255.0
    row = weight[nose[1]]
    assert row.max() == 1.0 and row[0] == 0.0 and row[-1] == 0.0
    assert np.abs(np.diff(row)).max() < 0.06  # a Gaussian edge, sigma ~11 px here: no seam


def test_crop_box_pads_by_replicating_the_border():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :100] = (200, 10, 10)
    frame[:, 100:] = (10, 10, 200)
    crop = box_crop(frame, np.array([-40.0, 20.0, 40.0, 80.0]), size=64, margin=0.0)
    assert crop.image.shape == (64, 64, 3)
    # The box runs off the left edge: the padded part repeats the red edge pixels.
    assert (np.abs(crop.image[:, :20].astype(int) - (200, 10, 10)) <= 1).all()
    # Box centre maps to the crop centre; the scale is size / side.
    np.testing.assert_allclose(apply_affine(crop.matrix, np.array([[0.0, 50.0]])), [[32, 32]])
    np.testing.assert_allclose(crop.matrix[0, 0], 64 / 80)
    assert np.array_equal(crop_box(frame, np.array([-40.0, 20.0, 40.0, 80.0]), 64, 0.0), crop.image)


def test_crop_box_downscale_is_area_averaged():
    """A 1-px checkerboard shrunk 4x must come out flat grey (no aliasing)."""
    board = (np.indices((400, 400)).sum(0) % 2 * 255).astype(np.uint8)
    frame = np.repeat(board[..., None], 3, axis=2)
    crop = crop_box(frame, np.array([100.0, 100.0, 300.0, 300.0]), size=50, margin=0.0)
    assert abs(float(crop.mean()) - 127.5) < 2 and crop.std() < 3


def test_alignment_rejects_bad_landmarks(frame_and_mesh):
    frame, _ = frame_and_mesh
    with pytest.raises(OptionError):
        align_face(frame, np.zeros((10, 2)))
    with pytest.raises(OptionError):
        align_face(frame, np.full((478, 3), np.nan))
