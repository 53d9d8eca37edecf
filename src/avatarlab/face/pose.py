"""Head pose (yaw, pitch, roll in degrees) from the 478-point mesh.

The mesh's 2D points are matched to ``CANONICAL_FACE_3D`` (a canonical face
derived from MediaPipe, see ``avatarlab.face.canonical``) with ``cv2.solvePnP`` for a pinhole
camera whose focal length equals the image width and whose principal point is
the image centre. Only ``RIGID_POINTS`` (nose, eye corners, cheeks) are used,
so speech and expressions barely move the estimate.

Sign conventions (angles in degrees, 0 = facing the camera upright):

* yaw > 0: the subject turns to *their* left (the nose moves towards the
  image's right in a non-mirrored picture);
* pitch > 0: the subject looks up (the nose moves up in the image);
* roll > 0: the head tilts clockwise as seen in the image.

They come from ``R = Ry(-yaw) Rx(-pitch) Rz(roll)`` (intrinsic, camera axes
x right, y down, z forward), the rotation from the canonical face to the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from avatarlab.face.canonical import CANONICAL_FACE_3D, RIGID_POINTS

_MODEL_POINTS = np.ascontiguousarray(CANONICAL_FACE_3D[RIGID_POINTS], dtype=np.float64)
_NO_DISTORTION = np.zeros(4, dtype=np.float64)
_MODEL_CENTRE = _MODEL_POINTS.mean(0)
_MODEL_SPREAD = float(np.sqrt(_MODEL_POINTS[:, :2].var(0).sum()))


@dataclass(frozen=True)
class HeadPose:
    """Head rotation in degrees; conventions in the module docstring."""

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        """``(3,)`` float32 yaw, pitch, roll."""
        return np.array([self.yaw, self.pitch, self.roll], dtype=np.float32)


def camera_matrix(frame_size: tuple[int, int]) -> np.ndarray:
    """3x3 pinhole intrinsics for ``frame_size`` (W, H): focal = W, centre = image centre."""
    w, h = frame_size
    return np.array([[w, 0.0, w / 2], [0.0, w, h / 2], [0.0, 0.0, 1.0]], dtype=np.float64)


def rotation_to_angles(rotation: np.ndarray) -> HeadPose:
    """Decompose a canonical->camera rotation matrix into ``HeadPose`` angles."""
    r = rotation
    b = math.asin(max(-1.0, min(1.0, -float(r[1, 2]))))
    a = math.atan2(float(r[0, 2]), float(r[2, 2]))
    c = math.atan2(float(r[1, 0]), float(r[1, 1]))
    return HeadPose(yaw=-math.degrees(a), pitch=-math.degrees(b), roll=math.degrees(c))


def solve_head_rotation(
    mesh: np.ndarray, frame_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Rotation matrix (3x3) and translation (3,) in canonical units (about cm), or None."""
    image_points = np.ascontiguousarray(mesh[RIGID_POINTS, :2], dtype=np.float64)
    if not np.isfinite(image_points).all():
        return None
    cam = camera_matrix(frame_size)
    # Start from a frontal face at the depth its image size implies: without a
    # guess the solver can land on the mirrored solution behind the camera.
    spread = float(np.sqrt(image_points.var(0).sum()))
    depth = cam[0, 0] * _MODEL_SPREAD / max(spread, 1e-6)
    centre = image_points.mean(0)
    tvec0 = np.array(
        [
            (centre[0] - cam[0, 2]) * depth / cam[0, 0],
            (centre[1] - cam[1, 2]) * depth / cam[1, 1],
            depth,
        ]
    ).reshape(3, 1) - _MODEL_CENTRE.reshape(3, 1)
    ok, rvec, tvec = cv2.solvePnP(
        _MODEL_POINTS,
        image_points,
        cam,
        _NO_DISTORTION,
        rvec=np.zeros((3, 1)),
        tvec=tvec0,
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation, tvec.reshape(3)


def head_pose(mesh: np.ndarray, frame_size: tuple[int, int]) -> HeadPose | None:
    """Head pose of a ``(478 or 468, >=2)`` pixel mesh in a frame of ``frame_size`` (W, H).

    Returns None when the mesh has non-finite points or the solver fails.
    """
    solved = solve_head_rotation(mesh, frame_size)
    return None if solved is None else rotation_to_angles(solved[0])


def head_poses(meshes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """``(N, 3)`` float32 yaw, pitch, roll for ``(N, 478, >=2)`` meshes; NaN rows where missing."""
    out = np.full((len(meshes), 3), np.nan, dtype=np.float32)
    for i, mesh in enumerate(meshes):
        pose = head_pose(mesh, frame_size)
        if pose is not None:
            out[i] = pose.as_array()
    return out
