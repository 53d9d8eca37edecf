"""Builders for the MediaPipe graphs the body package runs (models ship inside ``mediapipe``).

Only models that ship in the wheel are used: the pose landmarker "full"
(``model_complexity=1``; "lite" and "heavy" would be downloaded on first use,
which an offline install cannot do), the full hand landmarker, the 478-point
face mesh (through ``avatarlab.face``) and selfie segmentation. Every graph
keeps tracking state, so each person and hand gets its own instance.
"""

from __future__ import annotations

from typing import Any

from avatarlab.face.models import QuietGraph

POSE_MODEL_COMPLEXITY = 1
"""MediaPipe pose landmarker "full", the one that ships in the mediapipe wheel."""

HAND_MODEL_COMPLEXITY = 0
"""MediaPipe hand landmarker "lite": it finds hands about as often as "full" at half the cost."""

MIN_DETECTION = 0.5
MIN_TRACKING = 0.5


def new_pose(static: bool) -> Any:
    """A MediaPipe Pose graph (the "full" model, with MediaPipe's own landmark filter)."""
    from avatarlab.face.models import import_mediapipe_solution

    pose = import_mediapipe_solution("pose")

    return QuietGraph(
        pose.Pose,
        static_image_mode=static,
        model_complexity=POSE_MODEL_COMPLEXITY,
        smooth_landmarks=True,
        enable_segmentation=False,
        min_detection_confidence=MIN_DETECTION,
        min_tracking_confidence=MIN_TRACKING,
    )


def new_hands(static: bool) -> Any:
    """A MediaPipe Hands graph for one hand (it runs on a crop around one wrist)."""
    from avatarlab.face.models import import_mediapipe_solution

    hands = import_mediapipe_solution("hands")

    return QuietGraph(
        hands.Hands,
        static_image_mode=static,
        max_num_hands=1,
        model_complexity=HAND_MODEL_COMPLEXITY,
        min_detection_confidence=MIN_DETECTION,
        min_tracking_confidence=MIN_TRACKING,
    )


def new_selfie_segmentation(landscape: bool = False) -> Any:
    """MediaPipe selfie segmentation: general (256x256) or landscape (144x256) model."""
    from avatarlab.face.models import import_mediapipe_solution

    selfie_segmentation = import_mediapipe_solution("selfie_segmentation")

    return QuietGraph(selfie_segmentation.SelfieSegmentation, model_selection=1 if landscape else 0)
