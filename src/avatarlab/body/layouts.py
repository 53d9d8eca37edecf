"""Keypoint layouts: MediaPipe's 33 pose points to OpenPose BODY_25 / COCO-18, hands, 70-point face.

Layouts follow OpenPose's ``doc/02_output.md`` (CMU-Perceptual-Computing-Lab/openpose;
``POSE_BODY_25_BODY_PARTS``) and the DWPose/ControlNet annotator
(``ControlNet-v1-1-nightly/annotator/openpose/util.py``: 18-point body, limb
sequence, colours). "Left" and "right" are the *subject's* sides throughout, as
in both OpenPose and MediaPipe: the subject's right shoulder is on the image's
left in a frontal, non-mirrored picture.

BODY_25 from MediaPipe's 33 points (``mediapipe.solutions.pose.PoseLandmark``):

======  ==========  =========================================================
BODY_25 name        MediaPipe source
======  ==========  =========================================================
0       Nose        0 nose
1       Neck        derived: midpoint of 11 left_shoulder and 12 right_shoulder
2-4     RShoulder,  12 right_shoulder, 14 right_elbow, 16 right_wrist
        RElbow,
        RWrist
5-7     LShoulder.. 11 left_shoulder, 13 left_elbow, 15 left_wrist
8       MidHip      derived: midpoint of 23 left_hip and 24 right_hip
9-11    RHip..      24 right_hip, 26 right_knee, 28 right_ankle
12-14   LHip..      23 left_hip, 25 left_knee, 27 left_ankle
15, 16  REye, LEye  5 right_eye, 2 left_eye (eye centres)
17, 18  REar, LEar  8 right_ear, 7 left_ear
19      LBigToe     31 left_foot_index (MediaPipe's toe tip)
20      LSmallToe   none: MediaPipe has no small-toe point, always missing
21      LHeel       29 left_heel
22      RBigToe     32 right_foot_index
23      RSmallToe   none, always missing
24      RHeel       30 right_heel
======  ==========  =========================================================

Confidence ``c`` is MediaPipe's per-point *visibility* (its estimate that the
point is in the frame and not occluded, in [0, 1]); it is not OpenPose's
heat-map peak, so thresholds tuned for OpenPose do not carry over exactly. A
derived point takes the lower visibility of its two sources. Points below the
confidence threshold or outside the frame are *missing*: zeros in OpenPose JSON,
-1 in the DWPose layout.

COCO-18 (OpenPose COCO and DWPose's 18-point body) is BODY_25 without MidHip and
the feet: ``BODY25_TO_COCO18``.

Hands use OpenPose's 21-point hand layout, which is MediaPipe's hand-landmark
order: 0 wrist; 1-4 thumb (CMC, MCP, IP, tip); 5-8 index, 9-12 middle, 13-16
ring, 17-20 little finger (MCP, PIP, DIP, tip).

The face uses OpenPose's 70-point layout: the 68 iBUG points (read off our
478-point mesh with ``avatarlab.face.MESH_TO_68``) then 68 = right pupil and
69 = left pupil (MediaPipe's iris centres 468 and 473).
"""

from __future__ import annotations

import numpy as np

from avatarlab.face.landmarks68 import mesh_to_68
from avatarlab.face.topology import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER

BODY_25_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
"""OpenPose ``POSE_BODY_25_BODY_PARTS`` order."""

NUM_BODY_25 = 25
NUM_COCO_18 = 18
NUM_HAND = 21
NUM_FACE_70 = 70
NUM_MEDIAPIPE_POSE = 33

MEDIAPIPE_TO_BODY_25: tuple[tuple[int, ...], ...] = (
    (0,), (11, 12), (12,), (14,), (16,), (11,), (13,), (15,),
    (23, 24), (24,), (26,), (28,), (23,), (25,), (27,), (5,), (2,),
    (8,), (7,), (31,), (), (29,), (32,), (), (30,),
)  # fmt: skip
"""MediaPipe pose indices whose mean gives each BODY_25 point (empty: never available)."""

BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
"""BODY_25 rows forming OpenPose's COCO-18 body (also DWPose's 18-point ``candidate``)."""

COCO_18_NAMES = tuple(BODY_25_NAMES[i] for i in BODY25_TO_COCO18)

COCO_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
"""COCO-18 limbs (0-based) drawn by ControlNet/DWPose, in drawing (= colour) order.

``limbSeq`` of ``annotator/openpose/util.py`` is 1-based and has two more
entries (ear to shoulder) that the annotator never draws (it loops over 17).
"""

COCO_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
"""RGB colour of limb ``i`` (``COCO_LIMBS[i]``) and of joint ``i`` (COCO-18 point ``i``)."""

HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
"""Hand bones in the annotator's ``draw_handpose`` order; edge ``i`` has hue ``i / 20``."""

_SRC_A = np.array([t[0] if t else 0 for t in MEDIAPIPE_TO_BODY_25], dtype=np.int64)
_SRC_B = np.array([t[-1] if t else 0 for t in MEDIAPIPE_TO_BODY_25], dtype=np.int64)
_NEVER = np.array([not t for t in MEDIAPIPE_TO_BODY_25], dtype=bool)


def mediapipe_to_body25(points: np.ndarray) -> np.ndarray:
    """BODY_25 ``(25, 3)`` float32 x, y, c from MediaPipe pose points ``(33, 3)`` x, y, visibility.

    Derived points (neck, mid-hip) are midpoints with the lower of the two
    visibilities; the small toes are NaN with c = 0. No thresholding here.
    """
    pts = np.asarray(points, dtype=np.float32)
    out = np.empty((NUM_BODY_25, 3), dtype=np.float32)
    out[:, :2] = 0.5 * (pts[_SRC_A, :2] + pts[_SRC_B, :2])
    out[:, 2] = np.minimum(pts[_SRC_A, 2], pts[_SRC_B, 2])
    out[_NEVER, :2] = np.nan
    out[_NEVER, 2] = 0.0
    return out


def body25_to_coco18(body25: np.ndarray) -> np.ndarray:
    """COCO-18 rows ``(..., 18, C)`` of BODY_25 points ``(..., 25, C)``."""
    return np.asarray(body25)[..., BODY25_TO_COCO18, :]


def mesh_to_face70(mesh: np.ndarray) -> np.ndarray:
    """OpenPose 70-point face ``(70, 2)`` float32 pixels from a 478-point mesh ``(478, >=2)``.

    68 iBUG points via ``MESH_TO_68`` plus the right and left iris centres as
    pupils (NaN when the mesh has no iris rows).
    """
    mesh = np.asarray(mesh, dtype=np.float32)
    out = np.full((NUM_FACE_70, 2), np.nan, dtype=np.float32)
    out[:68] = mesh_to_68(mesh)
    if mesh.shape[0] > LEFT_IRIS_CENTER:
        out[68] = mesh[RIGHT_IRIS_CENTER, :2]
        out[69] = mesh[LEFT_IRIS_CENTER, :2]
    return out


def hsv_edge_colour(index: int, count: int = len(HAND_EDGES)) -> tuple[int, int, int]:
    """RGB of hand edge ``index``: hue ``index / count``, full saturation and value.

    Matches ``matplotlib.colors.hsv_to_rgb([i / 20, 1, 1]) * 255`` as the
    annotator passes it to OpenCV (which rounds).
    """
    h = (index / count) * 6.0  # the same float steps as matplotlib's hsv_to_rgb
    sector = int(h) % 6
    f = h - int(h)
    rise, fall = round(255 * f), round(255 * (1.0 - f))
    return (
        (255, rise, 0),
        (fall, 255, 0),
        (0, 255, rise),
        (0, fall, 255),
        (rise, 0, 255),
        (255, 0, fall),
    )[sector]
