"""Skeleton renders in the ControlNet/DWPose convention: the conditioning input of pose-to-video models.

Drawn as ``draw_bodypose``, ``draw_handpose`` and ``draw_facepose`` of the
DWPose annotator (IDEA-Research/DWPose ``ControlNet-v1-1-nightly/annotator/dwpose/util.py``;
the same colours and limbs as ControlNet's ``annotator/openpose/util.py``) on a
black RGB canvas the size of the source:

1. the 17 COCO-18 limbs as filled ellipses (half-width ``STICK_WIDTH`` = 4 px,
   length = the limb), limb ``i`` in ``COCO_COLOURS[i]``;
2. the whole canvas dimmed to 60 % (so a limb's pixels are ``0.6 * colour``,
   truncated to integers);
3. the 18 joints as filled circles of radius ``JOINT_RADIUS`` = 4 in full colour;
4. hand bones as 2 px lines, bone ``i`` of 20 in hue ``i / 20``, then the 21 hand
   points as radius-4 circles in blue (0, 0, 255);
5. face points as radius-3 white circles (the 68 iBUG points; pupils are drawn too
   when present, as the 70-point layout has them).

Coordinates are truncated to integer pixels as the annotator does. Colours are
RGB, as ControlNet feeds the canvas to its models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from avatarlab.body.estimate import FramePose, Person
from avatarlab.body.layouts import (
    BODY25_TO_COCO18,
    COCO_COLOURS,
    COCO_LIMBS,
    HAND_EDGES,
    hsv_edge_colour,
)
from avatarlab.face.boxes import check_frame

STICK_WIDTH = 4
JOINT_RADIUS = 4
LIMB_DIM = 0.6
HAND_LINE = 2
HAND_RADIUS = 4
HAND_POINT_COLOUR = (0, 0, 255)
FACE_RADIUS = 3
FACE_COLOUR = (255, 255, 255)


def _ok(p: np.ndarray) -> bool:
    return bool(np.isfinite(p[0]) and np.isfinite(p[1]) and p[2] > 0)


def limb_polygon(a: np.ndarray, b: np.ndarray, width: int = STICK_WIDTH) -> np.ndarray:
    """Polygon ``(K, 2)`` int32 of the ellipse the annotator draws for a limb from ``a`` to ``b``."""
    length = math.hypot(a[0] - b[0], a[1] - b[1])
    angle = math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))
    centre = (int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2))
    return np.asarray(
        cv2.ellipse2Poly(centre, (int(length / 2), width), int(angle), 0, 360, 1), dtype=np.int32
    )


def draw_people(
    people: Sequence[Person], frame_size: tuple[int, int], hands: bool = True, face: bool = True
) -> np.ndarray:
    """Skeleton canvas RGB uint8 ``(H, W, 3)`` of ``people`` (pixel coordinates); see module doc."""
    w, h = frame_size
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    bodies = [p.body[list(BODY25_TO_COCO18)] for p in people]
    for i, (a, b) in enumerate(COCO_LIMBS):
        for body in bodies:
            if _ok(body[a]) and _ok(body[b]):
                cv2.fillConvexPoly(canvas, limb_polygon(body[a], body[b]), COCO_COLOURS[i])
    canvas = (canvas * LIMB_DIM).astype(np.uint8)
    for i in range(len(COCO_COLOURS)):
        for body in bodies:
            if _ok(body[i]):
                centre = (int(body[i, 0]), int(body[i, 1]))
                cv2.circle(canvas, centre, JOINT_RADIUS, COCO_COLOURS[i], thickness=-1)
    if hands:
        for person in people:
            for hand in (person.hand_left, person.hand_right):
                if hand is not None:
                    _draw_hand(canvas, hand)
    if face:
        for person in people:
            if person.face is not None:
                for p in person.face:
                    if _ok(p):
                        cv2.circle(
                            canvas, (int(p[0]), int(p[1])), FACE_RADIUS, FACE_COLOUR, thickness=-1
                        )
    return canvas


def _draw_hand(canvas: np.ndarray, hand: np.ndarray) -> None:
    for i, (a, b) in enumerate(HAND_EDGES):
        if _ok(hand[a]) and _ok(hand[b]):
            pa, pb = (int(hand[a, 0]), int(hand[a, 1])), (int(hand[b, 0]), int(hand[b, 1]))
            cv2.line(canvas, pa, pb, hsv_edge_colour(i), thickness=HAND_LINE)
    for p in hand:
        if _ok(p):
            cv2.circle(canvas, (int(p[0]), int(p[1])), HAND_RADIUS, HAND_POINT_COLOUR, thickness=-1)


def draw_pose(frame: FramePose, hands: bool = True, face: bool = True) -> np.ndarray:
    """Skeleton canvas of one ``FramePose`` at its source size."""
    return draw_people(frame.people, frame.frame_size, hands, face)


def overlay(frame: np.ndarray, skeleton: np.ndarray, dim: float = 0.5) -> np.ndarray:
    """The skeleton's drawn pixels over the frame (dimmed by ``dim`` elsewhere), RGB uint8.

    Drawn pixels keep the skeleton's exact colours, so the overlay can be
    checked with the same pixel tests as the skeleton.
    """
    frame = check_frame(frame)
    drawn = skeleton.any(axis=2)
    out = (frame.astype(np.float32) * dim).astype(np.uint8)
    out[drawn] = skeleton[drawn]
    return out
