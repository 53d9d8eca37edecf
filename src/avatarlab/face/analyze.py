"""Everything about the faces in one still image, for the ``faces`` command and previews."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from avatarlab.face.boxes import check_frame
from avatarlab.face.detect import FaceDetector
from avatarlab.face.landmarks68 import mesh_to_68
from avatarlab.face.mesh import FaceMesher
from avatarlab.face.pose import HeadPose, head_pose


@dataclass(frozen=True)
class FaceAnalysis:
    """One face: box ``(4,)`` px, detector score, mesh ``(478, 3)`` px, iBUG points ``(68, 2)`` px,
    head pose (degrees); the last three are None when the mesh model rejects the face."""

    box: np.ndarray
    score: float
    mesh: np.ndarray | None
    landmarks68: np.ndarray | None
    pose: HeadPose | None

    def to_dict(self) -> dict[str, object]:
        """One face of the ``avatarlab.Faces/2`` JSON (:func:`face_record`)."""
        return face_record(self.box, self.score, self.pose, self.landmarks68, self.mesh)


FACES_FORMAT = "avatarlab.Faces/2"
"""Format tag of the faces JSON, the same for images (one frame) and videos (every frame)."""


def _rounded(values: np.ndarray, decimals: int) -> list:  # type: ignore[type-arg]
    """Nested lists of ``values`` rounded to ``decimals`` (float64 first: no float32 tails)."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def face_record(
    box: np.ndarray,
    score: float | None,
    pose: HeadPose | None,
    landmarks68: np.ndarray | None,
    mesh: np.ndarray | None,
) -> dict[str, object]:
    """One face in the faces JSON: box x0 y0 x1 y1, score, pose (degrees), 68 points and
    the 478-point mesh (x, y px; z in the mesh's pixel-scaled depth), pixels to 0.01."""
    return {
        "box": _rounded(box, 2),
        "score": None if score is None else round(float(score), 4),
        "pose": None
        if pose is None
        else {k: round(float(getattr(pose, k)), 2) for k in ("yaw", "pitch", "roll")},
        "landmarks68": None if landmarks68 is None else _rounded(landmarks68, 2),
        "mesh": None if mesh is None else _rounded(mesh, 2),
    }


def analyze_image(
    image: np.ndarray | str | os.PathLike[str], detector: FaceDetector | None = None
) -> list[FaceAnalysis]:
    """Detect every face in an RGB uint8 image (or an image file), largest first, with mesh and pose."""
    if not isinstance(image, np.ndarray):
        from avatarlab.media import read_image

        image = read_image(image)
    frame = check_frame(image)
    detector = detector or FaceDetector()
    mesher = FaceMesher(detector=detector)
    size = (frame.shape[1], frame.shape[0])
    out = []
    for det in detector.detect(frame):
        mesh = mesher.mesh(frame, det.box)
        out.append(
            FaceAnalysis(
                box=det.box,
                score=det.score,
                mesh=mesh,
                landmarks68=None if mesh is None else mesh_to_68(mesh),
                pose=None if mesh is None else head_pose(mesh, size),
            )
        )
    return out
