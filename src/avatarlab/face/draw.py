"""Annotated previews: boxes, landmarks, head-pose axes and labels drawn on a frame copy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from avatarlab.face import topology as T
from avatarlab.face.boxes import check_frame
from avatarlab.face.pose import HeadPose

BOX_COLOUR = (0, 220, 0)
POINT_COLOUR = (255, 255, 0)
CONTOUR_COLOUR = (0, 200, 255)
AXIS_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 90, 255))
"""RGB colours of the pose axes: x (subject's left), y (down), z (out of the face)."""

_CONTOURS = (
    T.LIPS_OUTER,
    T.LIPS_INNER,
    T.RIGHT_EYE,
    T.LEFT_EYE,
    T.RIGHT_EYEBROW,
    T.LEFT_EYEBROW,
    T.FACE_OVAL,
)


def pose_rotation(pose: HeadPose) -> np.ndarray:
    """Rotation matrix canonical face -> camera for ``pose`` (inverse of ``rotation_to_angles``)."""
    a, b, c = (math.radians(v) for v in (-pose.yaw, -pose.pitch, pose.roll))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def draw_annotations(
    frame: np.ndarray,
    box: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    pose: HeadPose | None = None,
    label: str | None = None,
    contours: bool = True,
) -> np.ndarray:
    """Copy of ``frame`` (RGB uint8) with a box, landmarks and pose drawn.

    ``landmarks``: ``(478 | 468, >=2)`` mesh (drawn as feature contours, or
    points if ``contours`` is False) or ``(68, 2)`` points (drawn as dots).
    ``pose`` draws 3D axes from the nose and a "yaw pitch roll" caption;
    ``label`` adds text above the box.
    """
    out = check_frame(frame).copy()
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    text_y = 20 * thick
    if box is not None and np.isfinite(box).all():
        x0, y0, x1, y1 = (round(float(v)) for v in box[:4])
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOUR, thick, cv2.LINE_AA)
        text_y = max(y0 - 6 * thick, 14 * thick)
        if label:
            _text(out, label, (x0, text_y), thick)
            text_y = max(text_y - 16 * thick, 14 * thick)
    pts = None if landmarks is None else np.asarray(landmarks, dtype=np.float64)[:, :2]
    if pts is not None and np.isfinite(pts).any():
        if contours and pts.shape[0] in (T.NUM_FACE_POINTS, T.NUM_MESH_POINTS):
            for loop in _CONTOURS:
                poly = np.round(pts[list(loop)]).astype(np.int32)
                cv2.polylines(out, [poly], True, CONTOUR_COLOUR, thick, cv2.LINE_AA)
        else:
            radius = max(1, thick)
            for x, y in np.round(pts[np.isfinite(pts).all(1)]).astype(int):
                cv2.circle(out, (int(x), int(y)), radius, POINT_COLOUR, -1, cv2.LINE_AA)
    if pose is not None:
        _draw_axes(out, pose, pts, box, thick)
        caption = f"yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f} roll {pose.roll:+.0f}"
        x = 4 * thick if box is None else round(float(box[0]))
        _text(out, caption, (x, text_y), thick)
    return out


def draw_faces(frame: np.ndarray, faces: Sequence[object]) -> np.ndarray:
    """Draw every ``FaceAnalysis`` (box, mesh contours, pose, score) on a frame copy."""
    out = check_frame(frame).copy()
    for face in faces:
        out = draw_annotations(
            out,
            box=face.box,  # type: ignore[attr-defined]
            landmarks=face.mesh,  # type: ignore[attr-defined]
            pose=face.pose,  # type: ignore[attr-defined]
            label=f"{face.score:.2f}",  # type: ignore[attr-defined]
        )
    return out


def _draw_axes(
    out: np.ndarray, pose: HeadPose, pts: np.ndarray | None, box: np.ndarray | None, thick: int
) -> None:
    if pts is not None and pts.shape[0] >= T.NUM_FACE_POINTS and np.isfinite(pts[T.NOSE_TIP]).all():
        origin = pts[T.NOSE_TIP]
        size = float(np.ptp(pts[np.isfinite(pts).all(1), 0]))
    elif box is not None and np.isfinite(box).all():
        origin = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        size = float(box[2] - box[0])
    else:
        return
    rot = pose_rotation(pose)
    # Axes of the canonical face in camera space; z points out of the face (towards the camera).
    axes = (rot[:, 0], rot[:, 1], -rot[:, 2])
    for axis, colour in zip(axes, AXIS_COLOURS, strict=True):
        end = origin + 0.5 * size * axis[:2]
        p0 = (round(float(origin[0])), round(float(origin[1])))
        cv2.arrowedLine(
            out,
            p0,
            (round(float(end[0])), round(float(end[1]))),
            colour,
            thick + 1,
            cv2.LINE_AA,
            tipLength=0.15,
        )


def _text(out: np.ndarray, text: str, org: tuple[int, int], thick: int) -> None:
    scale = 0.45 * thick
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(
        out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
    )
