"""Lazy, cached loaders for the models that ship inside installed packages.

Nothing is loaded at import time; the first call builds the model and later
calls reuse it. MediaPipe graphs are stateful, so shared static-image
instances are guarded by a lock; trackers create their own instances.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from avatarlab.errors import MissingWeightsError

SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"

MEDIAPIPE_LOCK = threading.Lock()
"""Held while a shared (cached) MediaPipe graph runs; graphs are not re-entrant."""


def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped by ``face-recognition-models``.

    The package is located without importing it (its ``__init__`` needs the
    deprecated ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            "the dlib face models are missing: pip install face-recognition-models"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise MissingWeightsError(
            f"{path} is missing: reinstall face-recognition-models "
            "(pip install --force-reinstall face-recognition-models)"
        )
    return path


@lru_cache(maxsize=1)
def shape_predictor_68() -> Any:
    """dlib's 68-point iBUG shape predictor."""
    import dlib

    return dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_68)))


@lru_cache(maxsize=1)
def face_recognition_resnet() -> Any:
    """dlib's ResNet face-recognition model (128-D embeddings)."""
    import dlib

    return dlib.face_recognition_model_v1(str(dlib_model_path(FACE_RECOGNITION_RESNET)))


@lru_cache(maxsize=2)
def mediapipe_detector(model_selection: int) -> Any:
    """Shared MediaPipe face detector: 0 short-range (< 2 m), 1 full-range (< 5 m).

    ``min_detection_confidence`` is kept low; callers filter by their own threshold.
    """
    from mediapipe.python.solutions import face_detection

    return face_detection.FaceDetection(
        model_selection=model_selection, min_detection_confidence=0.2
    )


@lru_cache(maxsize=2)
def mediapipe_static_mesh(refine: bool) -> Any:
    """Shared MediaPipe FaceMesh in static-image mode (detects in every call)."""
    return new_mediapipe_mesh(static=True, refine=refine)


def new_mediapipe_mesh(static: bool, refine: bool, min_confidence: float = 0.5) -> Any:
    """A fresh MediaPipe FaceMesh graph (trackers own one each: it keeps state)."""
    from mediapipe.python.solutions import face_mesh

    return face_mesh.FaceMesh(
        static_image_mode=static,
        max_num_faces=1,
        refine_landmarks=refine,
        min_detection_confidence=min_confidence,
        min_tracking_confidence=min_confidence,
    )
