"""Identity embeddings: dlib's ResNet face descriptor (128-D, LFW 99.38 %).

The face is cut out by dlib's own "normal chip" (150 x 150, aligned from the 68
landmarks, padding 0.25), as in dlib's and face_recognition's reference use.
Same-person descriptors are close: dlib's threshold is a Euclidean distance
of 0.6; ``identity_similarity`` gives the cosine, the measure the talking-head
papers report (CSIM), here with this model instead of ArcFace.
"""

from __future__ import annotations

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.face import models as _models
from avatarlab.face.boxes import box_from_points, check_frame
from avatarlab.face.landmarks68 import landmarks68_dlib, mesh_to_68

EMBEDDING_SIZE = 128


def full_object_detection(points68: np.ndarray) -> object:
    """dlib ``full_object_detection`` built from ``(68, 2)`` pixel points."""
    import dlib

    pts = np.asarray(points68, dtype=np.float64)
    x0, y0, x1, y1 = box_from_points(pts)
    rect = dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
    parts = dlib.points()
    for x, y in pts:
        parts.append(dlib.point(round(x), round(y)))
    return dlib.full_object_detection(rect, parts)


class FaceEmbedder:
    """Compute 128-D identity descriptors with dlib's ResNet (model loaded once, shared).

    ``jitters``: extra randomly jittered chips averaged per call (dlib's
    ``num_jitters``; 0 is deterministic and fastest).
    """

    def __init__(self, jitters: int = 0) -> None:
        if jitters < 0:
            raise OptionError(f"jitters must be >= 0, got {jitters}")
        self.jitters = jitters

    def embed(self, frame: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Descriptor ``(128,)`` float32 of one face in ``frame`` (RGB uint8).

        ``face``: a ``(4,)`` box (dlib's predictor finds the 68 points), ``(68, 2)``
        iBUG points, or a ``(478 | 468, >=2)`` mesh (converted with ``mesh_to_68``).
        """
        frame = check_frame(frame)
        points = self._points68(frame, np.asarray(face, dtype=np.float32))
        shape = full_object_detection(points)
        vec = _models.face_recognition_resnet().compute_face_descriptor(frame, shape, self.jitters)
        return np.asarray(vec, dtype=np.float32)

    @staticmethod
    def _points68(frame: np.ndarray, face: np.ndarray) -> np.ndarray:
        if face.shape == (4,):
            return landmarks68_dlib(frame, face)
        if face.ndim == 2 and face.shape[0] == 68:
            return face[:, :2]
        if face.ndim == 2 and face.shape[0] in (468, 478):
            return mesh_to_68(face)
        raise OptionError(
            f"face must be a (4,) box, (68, 2) points or a (478, 3) mesh, got {face.shape}"
        )


def identity_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two descriptors, in [-1, 1] (1 = same direction)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else 0.0
