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
        """JSON-ready summary (box, score, pose; landmarks as lists)."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(self.score, 4),
            "pose": None
            if self.pose is None
            else {k: round(getattr(self.pose, k), 2) for k in ("yaw", "pitch", "roll")},
            "landmarks68": None
            if self.landmarks68 is None
            else np.round(self.landmarks68, 2).tolist(),
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
