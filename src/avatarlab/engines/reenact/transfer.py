"""Motion transfer in canonical (pose-free) space: driving face -> target mesh for the source.

Every face (source or driving frame) is split by the warp rig's similarity fit
(:class:`avatarlab.engines.warp.rig.HeadFrame`, Umeyama on the expression-free
points) into a *pose* ``pix = s R h + t`` and a *canonical mesh* ``h`` (478 points,
iris included, about centimetres, see :mod:`avatarlab.face.canonical`). The
driving clip's change from its first frame is then

- expression ``dh = h_i - h_0`` (brows, lids, gaze, cheeks, lips, jaw), added to the
  source's canonical mesh, masked by the region and scaled by the multiplier;
- pose: rotation ``R_i R_0^T`` (clamped to ``max_angle`` per yaw, pitch, roll),
  scale ``s_i / s_0`` and translation ``(t_i - t_0) / s_0`` (in face units),
  applied on top of the source's own pose;

and the target mesh is ``s' R' (h_s + dh) + t'`` (orthographic, as the mesh).
For self-reenactment (source = driving frame 0) the target is exactly the
driving mesh. Absolute mode uses the driving rotation and canonical shape
themselves instead of their change.

The mouth's opening is relative to a closed mouth, not to whatever the first
driving frame shows: a clip that starts mid-word (its lips parted wider than the
source's) has its reference mouth closed to the source's opening by the jaw
(:func:`mouth_reference`), so a closed-mouth portrait opens and closes with it
instead of its lips being pushed through each other whenever the driver's close.
Inner lips that would still cross are moved to meet (:func:`part_lips`), in the
canonical mesh and again in the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from avatarlab.engines.reenact.options import ReenactOptions, Region
from avatarlab.engines.warp import topology as tp
from avatarlab.engines.warp.rig import (
    LIP_HANDLES,
    FaceRig,
    HeadFrame,
    Pose,
    eye_operator,
    lid_handles,
    lip_gaps,
)
from avatarlab.face import topology as T
from avatarlab.face.canonical import CANONICAL_FACE_3D, RIGID_POINTS
from avatarlab.face.filters import OneEuroFilter
from avatarlab.face.pose import HeadPose, rotation_to_angles

N_POINTS = T.NUM_MESH_POINTS
_EYE_OF_IRIS = ((T.RIGHT_IRIS, 0), (T.LEFT_IRIS, 1))
LOWER_FACE_Y_CM = (1.0, 2.2)
"""Canonical y (cm) over which the ``lips`` region fades in (nose tip ~ 1.2, lips ~ 4)."""
EYE_REGION_CM = (1.8, 3.0)
"""Distance (cm) from an eye centre over which the ``eyes`` region fades out."""


MOUTH_MARGIN_CM = 0.05
"""A first driving frame whose inner lips part less than this beyond the source's is the
mouth's reference as it is."""


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@lru_cache(maxsize=8)
def region_weights(region: Region) -> np.ndarray:
    """``(478,)`` share of the expression change each mesh point receives in ``region``."""
    canon = CANONICAL_FACE_3D
    if region in ("all", "expression"):
        return np.ones(N_POINTS)
    if region == "pose":
        return np.zeros(N_POINTS)
    if region == "lips":
        w = _smoothstep(
            (canon[:, 1] - LOWER_FACE_Y_CM[0]) / (LOWER_FACE_Y_CM[1] - LOWER_FACE_Y_CM[0])
        )
        return np.concatenate([w, np.zeros(N_POINTS - len(w))])
    centres = [canon[list(eye)].mean(0) for eye in tp.EYES]
    dist = np.min([np.linalg.norm(canon - c, axis=1) for c in centres], axis=0)
    w = 1.0 - _smoothstep((dist - EYE_REGION_CM[0]) / (EYE_REGION_CM[1] - EYE_REGION_CM[0]))
    return np.concatenate([w, np.ones(N_POINTS - len(w))])


def angles_to_rotation(pose: HeadPose) -> np.ndarray:
    """Inverse of :func:`avatarlab.face.pose.rotation_to_angles`: ``Ry(-yaw) Rx(-pitch) Rz(roll)``."""
    a, b, c = -math.radians(pose.yaw), -math.radians(pose.pitch), math.radians(pose.roll)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def clamp_rotation(rotation: np.ndarray, limit: float) -> tuple[np.ndarray, bool]:
    """``rotation`` with yaw, pitch and roll each clamped to ``+-limit`` degrees; clamped?"""
    pose = rotation_to_angles(rotation)
    angles = np.array([pose.yaw, pose.pitch, pose.roll])
    if np.all(np.abs(angles) <= limit):
        return rotation, False
    y, p, r = np.clip(angles, -limit, limit)
    return angles_to_rotation(HeadPose(float(y), float(p), float(r))), True


@dataclass(frozen=True)
class FaceGeometry:
    """One face split into pose and canonical shape.

    ``mesh``: ``(478, 3)`` pixels; ``frame``: its similarity ``pix = s R h + t``;
    ``canon``: ``(478, 3)`` canonical mesh (cm, iris rows NaN when the mesh has none).
    """

    mesh: np.ndarray
    frame: HeadFrame
    canon: np.ndarray

    @staticmethod
    def from_mesh(mesh: np.ndarray) -> FaceGeometry:
        pts = np.asarray(mesh, np.float64)[:, :3]
        if len(pts) < N_POINTS:
            pts = np.vstack([pts, np.full((N_POINTS - len(pts), 3), np.nan)])
        frame = HeadFrame.fit(pts)
        canon = frame.to_head(pts)
        for iris, eye in _EYE_OF_IRIS:  # no iris: put it at the eye centre
            if not np.isfinite(canon[list(iris)]).all():
                canon[list(iris)] = canon[list(tp.EYES[eye])].mean(0)
        return FaceGeometry(pts, frame, canon)

    @property
    def yaw(self) -> float:
        """Head yaw in degrees (``avatarlab.face.pose`` conventions)."""
        return rotation_to_angles(self.frame.rotation).yaw

    def eye_gaps(self) -> np.ndarray:
        """``(14,)`` canonical vectors' lengths from each upper-lid point to its lower partner."""
        up = list(tp.RIGHT_LID_UPPER) + list(tp.LEFT_LID_UPPER)
        low = list(tp.RIGHT_LID_LOWER) + list(tp.LEFT_LID_LOWER)
        return np.linalg.norm(self.canon[low] - self.canon[up], axis=1)


@dataclass
class Motion:
    """The driving change for one frame.

    ``delta``: ``(478, 3)`` canonical expression change (cm); ``rotation``: relative
    (or absolute) head rotation; ``scale``: size ratio; ``shift``: ``(3,)`` translation
    in face units (pixels / the reference face's scale); ``absolute``: ``delta`` is
    the driving canonical shape minus the source's and ``rotation`` replaces the
    source's own.
    """

    delta: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    scale: float = 1.0
    shift: np.ndarray = field(default_factory=lambda: np.zeros(3))
    absolute: bool = False

    @staticmethod
    def still() -> Motion:
        return Motion(np.zeros((N_POINTS, 3)))


def _rotvec(rotation: np.ndarray) -> np.ndarray:
    import cv2

    vec, _ = cv2.Rodrigues(np.asarray(rotation, np.float64))
    return vec.reshape(3)


def _from_rotvec(vec: np.ndarray) -> np.ndarray:
    import cv2

    mat, _ = cv2.Rodrigues(np.asarray(vec, np.float64).reshape(3, 1))
    return np.asarray(mat)


class MotionSignal:
    """Driving faces in, :class:`Motion` out: reference frame, holds, clamping, smoothing.

    Call :meth:`update` once per driving frame with its face (``None`` when lost).
    Before the first face the motion is still, and the first face reproduces the
    source, except a mouth that starts open beyond the source's (:func:`mouth_reference`);
    a lost face holds the last motion until it is found again. ``notes`` says what
    happened (lost frames, clamped rotations).
    """

    def __init__(self, options: ReenactOptions, max_angle: float, source: FaceGeometry) -> None:
        self.options = options
        self.max_angle = max_angle
        self.source = source
        self.reference: FaceGeometry | None = None
        self._reference_canon = source.canon
        self.last = Motion.still()
        self.lost: list[int] = []
        self.clamped: list[int] = []
        self.index = -1
        self._filter: OneEuroFilter | None = None
        if options.smoothing > 0:
            cutoff = 10.0 ** (1.0 - 1.5 * options.smoothing)  # 10 Hz .. 0.3 Hz
            self._filter = OneEuroFilter(min_cutoff=cutoff, beta=0.3, d_cutoff=1.0)

    def update(self, face: FaceGeometry | None, t: float) -> Motion:
        self.index += 1
        if face is None:
            self.lost.append(self.index)
            return self.last
        if self.reference is None:
            self.reference = face
            self._reference_canon = mouth_reference(face.canon, self.source.canon)
        ref = self.reference
        if self.options.relative:
            rotation = face.frame.rotation @ ref.frame.rotation.T
            delta = face.canon - self._reference_canon
        else:
            rotation = face.frame.rotation
            delta = face.canon - self.source.canon
        rotation, clamped = clamp_rotation(rotation, self.max_angle)
        if clamped:
            self.clamped.append(self.index)
        motion = Motion(
            delta=delta,
            rotation=rotation,
            scale=face.frame.scale / ref.frame.scale,
            shift=(face.frame.translation - ref.frame.translation) / ref.frame.scale,
            absolute=not self.options.relative,
        )
        if self._filter is not None:
            motion = self._smooth(motion, t)
        self.last = motion
        return motion

    def _smooth(self, m: Motion, t: float) -> Motion:
        assert self._filter is not None
        packed = np.concatenate(
            [m.delta.ravel(), _rotvec(m.rotation), [math.log(m.scale)], m.shift]
        )
        out = self._filter(packed, t)
        n = m.delta.size
        return Motion(
            delta=out[:n].reshape(m.delta.shape),
            rotation=_from_rotvec(out[n : n + 3]),
            scale=math.exp(float(out[n + 3])),
            shift=out[n + 4 : n + 7],
            absolute=m.absolute,
        )

    def notes(self, what: str = "the driving clip") -> list[str]:
        from avatarlab.errors import describe_frames

        out = []
        if self.lost:
            out.append(
                f"no face in {len(self.lost)} frames of {what} "
                f"(frames {describe_frames(self.lost)}): held the last pose there"
            )
        if self.clamped:
            out.append(
                f"warning: the driving head turned more than {self.max_angle:g} degrees from its "
                f"first frame in {len(self.clamped)} frames "
                f"({describe_frames(self.clamped)}): rotation clamped there"
            )
        return out


@lru_cache(maxsize=1)
def _canonical_jaw() -> tuple[np.ndarray, np.ndarray]:
    """The canonical face under the rig ``(468, 3)``: jaw at rest, and fully open."""
    rig = FaceRig(CANONICAL_FACE_3D)
    return (
        rig.deform(Pose(jaw_open=0.0, lip_closed=0.0)),
        rig.deform(Pose(jaw_open=1.0, lip_closed=0.0)),
    )


def _open_jaw_gap() -> float:
    """Inner-lip gap (cm) of the canonical face with the rig's jaw fully open."""
    return float(lip_gaps(_canonical_jaw()[1])[4, 1])


@lru_cache(maxsize=1)
def _jaw_field() -> tuple[np.ndarray, np.ndarray]:
    """The rig's full jaw opening on the canonical face: ``(478, 3)`` canonical change
    (cm) and ``(9,)`` how much it parts each inner-lip pair (cm, ``tp.MOUTH_UPPER`` order)."""
    rest, opened = _canonical_jaw()
    field = np.zeros((N_POINTS, 3))
    field[: tp.N_FACE] = opened - rest
    return field, lip_gaps(opened)[:, 1] - lip_gaps(rest)[:, 1]


_DOWN = np.array([0.0, 1.0])
"""Canonical ``y``: down the face."""


def _set_lip_gaps(points: np.ndarray, gaps: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``points`` ``(478, >= 2)`` with each inner-lip pair's gap along the unit ``axis``
    set to ``gaps`` ``(9,)``, both lips moving by half the change (a new array)."""
    upper, lower = list(tp.MOUTH_UPPER), list(tp.MOUTH_LOWER)
    now = (points[lower, :2] - points[upper, :2]) @ axis
    half = 0.5 * (now - gaps)[:, None] * axis
    out = points.copy()
    out[upper, :2] += half
    out[lower, :2] -= half
    return out


def mouth_reference(reference: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``reference`` canonical mesh ``(478, 3)`` with its mouth closed to ``source``'s opening.

    When the first driving frame's inner lips (at the middle) part more than
    ``MOUTH_MARGIN_CM`` beyond the source's, the jaw field closes the difference and each
    inner-lip pair is then moved (half each lip) to the source's gap there: the jaw alone
    leaves the sides of an open vowel over-closed, and a later closed driving mouth then
    opened slots at the source's corners. Else ``reference`` is returned as it is
    (self-reenactment stays exact).
    """
    field, per_unit = _jaw_field()
    excess = float(lip_gaps(reference)[4, 1] - lip_gaps(source)[4, 1])
    if excess <= MOUTH_MARGIN_CM:
        return reference
    closed = reference - (excess / per_unit[4]) * field
    return _set_lip_gaps(closed, lip_gaps(source)[:, 1], _DOWN)


def part_lips(points: np.ndarray, down: np.ndarray | None = None) -> np.ndarray:
    """``points`` ``(478, >= 2)`` with each crossed inner-lip pair moved to meet at its middle.

    ``down``: the unit ``(2,)`` direction the gaps are measured along (default ``y``): a
    canonical mesh, or pixels with the face's own down axis (a closed mouth that is
    turned or tilted can cross by a pixel in the image, which folds the lip triangles).
    After :func:`mouth_reference` only small crossings are left (tracker noise, a driver
    pressing its lips harder than the source's rest), so the pair alone is moved.
    """
    axis = _DOWN if down is None else np.asarray(down, np.float64)
    gaps = (points[list(tp.MOUTH_LOWER), :2] - points[list(tp.MOUTH_UPPER), :2]) @ axis
    if gaps.min() >= 0.0:
        return points
    return _set_lip_gaps(points, np.maximum(gaps, 0.0), axis)


def lids_delta(canon: np.ndarray, closure: float) -> np.ndarray:
    """``(478, 3)`` canonical change closing both eyes of ``canon`` by ``closure`` (0..1)."""
    out = np.zeros((N_POINTS, 3))
    if closure > 0:
        out[: tp.N_FACE] = eye_operator() @ lid_handles(canon[: tp.N_FACE], float(closure))
    return out


def retarget(source: FaceGeometry, target: np.ndarray, options: ReenactOptions) -> np.ndarray:
    """``target`` canonical mesh with the eye and lip retargeting of ``options`` applied."""
    out = target
    if options.eyes_open >= 0:
        # Hold each lid at eyes_open x the source's own opening: close from the source shape.
        weights = region_weights("eyes")[:, None]
        held = source.canon + lids_delta(source.canon, 1.0 - min(options.eyes_open, 1.0))
        if options.eyes_open > 1.0:
            held = source.canon - (options.eyes_open - 1.0) * lids_delta(source.canon, 1.0)
        iris = list(T.RIGHT_IRIS + T.LEFT_IRIS)
        held[iris] = target[iris]  # gaze still follows
        out = out + weights * (held - out)
    if options.lips_still or options.lips_open >= 0:
        weights = region_weights("lips")[:, None]
        held = source.canon.copy()
        if options.lips_open >= 0:
            rig = FaceRig(source.canon[: tp.N_FACE])
            jaw = options.lips_open / max(_open_jaw_gap(), 1e-6)
            held[: tp.N_FACE] = rig.deform(Pose(jaw_open=jaw, lip_closed=0.0, teeth=1.0))
        out = out + weights * (held - out)
    return out


def target_mesh(
    source: FaceGeometry, motion: Motion, options: ReenactOptions, keep_pose: bool = False
) -> np.ndarray:
    """``(478, 3)`` pixel mesh of the source in ``motion`` (``keep_pose``: a source video's own)."""
    weights = region_weights(options.region)[:, None] * options.multiplier
    canon = source.canon + weights * motion.delta
    canon = part_lips(retarget(source, canon, options))
    frame = source.frame
    if options.moves_head and not keep_pose:
        rotation = motion.rotation if motion.absolute else motion.rotation @ frame.rotation
        frame = HeadFrame(
            frame.scale * motion.scale,
            rotation,
            frame.translation + frame.scale * motion.shift,
        )
    pixels = frame.to_pixels(canon)
    down = frame.rotation[:2, 1]
    return part_lips(pixels, down / max(float(np.linalg.norm(down)), 1e-9))


__all__ = [
    "FaceGeometry",
    "Motion",
    "MotionSignal",
    "RIGID_POINTS",
    "LIP_HANDLES",
    "angles_to_rotation",
    "clamp_rotation",
    "lids_delta",
    "mouth_reference",
    "part_lips",
    "region_weights",
    "retarget",
    "target_mesh",
]
