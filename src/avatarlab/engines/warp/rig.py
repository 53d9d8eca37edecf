"""The face rig: 478-point mesh + mouth/eye parameters -> deformed mesh.

All deformation happens in *head coordinates*: the mesh is brought into the frame
of the canonical face (``avatarlab.face.canonical``: x to the image's right, y
down, z away from the camera, about centimetres) by a similarity fitted to the
points that barely move with expression, so every constant below is in
centimetres and degrees whatever the head pose or image size. Pixel
displacements come back through the same similarity (orthographic projection).

The parts, applied in order to a *neutral* mesh (the source with its lips
closed, see :meth:`FaceRig.neutralise`):

- jaw: rotation about the left-right axis through the jaw joints
  (``JAW_PIVOT``, in front of the ears), skinned with per-vertex weights that are
  1 on the lower lip and chin, 0 on the upper lip and above the nose, and
  harmonic in between (so cheeks follow partly and smoothly);
- lips: corner spread / pucker (horizontal scaling about the mouth centre,
  pucker also protrudes and rounds), upper-lip raise, and lip closure (paired
  inner-lip points meet), set on the 40 lip-contour points and spread over the
  face surface harmonically, fading to zero at the face outline and above the
  nose tip;
- eyelids: each upper-lid point moves towards its lower-lid partner and the skin
  fold just above it moves with it (``LID_FOLD``), so the lid slides down as a
  whole instead of shearing the crease into waves (the reenact engine). The warp
  engine draws closed lids over the eye instead (:mod:`.lids`);
- brows: both brows lift (more at the inner half), the forehead skin above them
  with them, fading to a share of it at the top of the face (the band to the ring
  takes it to zero), while the lids and the crease above each lid stay put: the
  skin in between stretches, as in a real brow raise;
- smile: lip corners up and out, the cheeks and lower lids lift a little, spread
  over the face harmonically with the outline, upper lids, nose and brows fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatarlab.engines.warp import topology as tp
from avatarlab.face import topology as T
from avatarlab.face.canonical import CANONICAL_FACE_3D, RIGID_POINTS, similarity_fit

JAW_MAX_DEG = 11.0
"""Jaw rotation at ``jaw_open = 1`` (a wide-open vowel)."""
JAW_PIVOT = np.array([0.0, 0.6, 3.2])
"""Jaw joint axis point in head coordinates (cm): ear level, behind the face outline."""
SPREAD_WIDEN = 0.10
"""Relative widening of the lips at ``lip_spread = +1``."""
PUCKER_NARROW = 0.24
"""Relative narrowing of the lips at ``lip_spread = -1``."""
PUCKER_PROTRUDE_CM = 0.45
PUCKER_ROUND = 0.12
"""Relative vertical growth of the outer lips at full pucker (they evert)."""
LIP_RAISE_CM = 0.25
"""Upper-lip lift at ``upper_lip_raise = 1``."""
UPPER_SHARE = 0.35
"""Share of a lip closure done by the upper lip (the lower lip, on the jaw, does the rest)."""
OUTER_FOLLOW = 0.5
"""How much the outer lip contour follows the inner one when the lips close."""
LID_CLOSE = 0.9
"""Fraction of the lid gap the upper lid covers in a full blink (the lower lid does the rest)."""
ABOVE_NOSE_CM = 1.4
"""Canonical y (cm) above which mouth handles may not move anything (nose tip ~ 1.2)."""
LID_FOLD = 1.0
"""Share of the upper lid's travel that the skin ring above it follows, so the lid fold
moves down with the lid instead of being sheared by it."""
EYE_REACH_CM = 2.4
"""Lid motion fades to zero this far (cm) from the eye centre."""
BROW_RAISE_CM = 0.5
"""Brow lift at ``brow_raise = 1`` (inner brow; the outer end lifts :data:`BROW_OUTER`
of it). Speakers' emphasis raises are a few millimetres."""
BROW_OUTER = 0.7
BROW_FOREHEAD = 0.35
"""Share of the brow lift the top of the face outline (hairline) follows."""
BELOW_EYES_CM = -2.2
"""Canonical y (cm) below which brow motion may not move anything (eye corners ~ -2.7)."""
SMILE_LIFT_CM = 0.35
"""Lip-corner lift at ``smile = 1`` (the lip centre stays, in between follows the square
of the distance from it)."""
SMILE_WIDEN = 0.12
"""Relative widening of the lips at ``smile = 1``."""
SMILE_CHEEK_CM = 0.15
"""Cheek lift at ``smile = 1``."""
SMILE_LID_CM = 0.05
"""Lower-lid lift (middle of the lid) at ``smile = 1``."""

_LIPS_UPPER = (*tp.MOUTH_UPPER, *tp.OUTER_UPPER)
_LIPS_LOWER = (*tp.MOUTH_LOWER, *tp.OUTER_LOWER)
_CORNERS = (*tp.MOUTH_INNER_CORNERS, *T.MOUTH_CORNERS)
LIP_HANDLES = (*_LIPS_UPPER, *_LIPS_LOWER, *_CORNERS)
"""The 40 lip-contour points the lip operator is driven by (upper, lower, corners)."""
_N_LIP = len(tp.MOUTH_UPPER)
_EYE_HANDLES = (*tp.EYES[0], *tp.RIGHT_LID_ABOVE, *tp.EYES[1], *tp.LEFT_LID_ABOVE)
_BROWS = (*T.RIGHT_EYEBROW, *T.LEFT_EYEBROW)
_CHEEKS = (101, 50, 118, 330, 280, 347)
"""Cheekbone points (both sides) lifted by a smile."""
_LOWER_LIDS = (*tp.RIGHT_LID_LOWER, *tp.LEFT_LID_LOWER)


@dataclass(frozen=True)
class Pose:
    """One frame's face parameters (mouth in the speech module's units, lids in [0, 1]).

    ``jaw_open`` [0, 1], ``lip_spread`` [-1, 1] (negative = pucker), ``lip_closed``
    [0, 1], ``upper_lip_raise`` [0, 1], ``teeth`` [0, 1] (teeth visibility, used by
    the mouth interior), ``blink`` [0, 1] (0 open, 1 closed), ``brow_raise`` [0, 1]
    (both brows up), ``smile`` [0, 1].
    """

    jaw_open: float = 0.0
    lip_spread: float = 0.0
    lip_closed: float = 1.0
    upper_lip_raise: float = 0.0
    teeth: float = 0.0
    blink: float = 0.0
    brow_raise: float = 0.0
    smile: float = 0.0


@lru_cache(maxsize=1)
def jaw_weights() -> np.ndarray:
    """``(468,)`` skinning weight of each vertex on the jaw (1 chin/lower lip, 0 upper face)."""
    canon_y = CANONICAL_FACE_3D[:, 1]
    ones = set(_LIPS_LOWER) | {i for i in T.JAW if canon_y[i] > 3.5}
    zeros = (set(_LIPS_UPPER) | {i for i in range(tp.N_FACE) if canon_y[i] < 2.0}) - ones
    handles = sorted(ones | zeros)
    op = tp.harmonic_operator(handles, ())
    return op @ np.array([1.0 if h in ones else 0.0 for h in handles])


@lru_cache(maxsize=1)
def lip_operator() -> np.ndarray:
    """``(468, 40)`` harmonic spread of lip-handle displacements over the face."""
    canon_y = CANONICAL_FACE_3D[:, 1]
    zeros = set(T.FACE_OVAL) | {i for i in range(tp.N_FACE) if canon_y[i] < ABOVE_NOSE_CM}
    return tp.harmonic_operator(LIP_HANDLES, sorted(zeros - set(LIP_HANDLES)))


@lru_cache(maxsize=1)
def eye_operator() -> np.ndarray:
    """``(468, 46)`` harmonic spread of lid-handle displacements (both eyes, right first;
    per eye its contour :data:`~.topology.EYES`, then the skin ring above the upper lid)."""
    handles = _EYE_HANDLES
    centre = [CANONICAL_FACE_3D[list(e)].mean(0) for e in tp.EYES]
    dist = np.min([np.linalg.norm(CANONICAL_FACE_3D - c, axis=1) for c in centre], axis=0)
    zeros = {i for i in range(tp.N_FACE) if dist[i] > EYE_REACH_CM} - set(handles)
    return tp.harmonic_operator(handles, sorted(zeros))


@lru_cache(maxsize=1)
def brow_field() -> np.ndarray:
    """``(468,)`` share of the brow lift each vertex takes (canonical face).

    Handles: the brows (1 at the inner end, :data:`BROW_OUTER` at the outer) and the
    top of the face outline (:data:`BROW_FOREHEAD`); zero on the eye contours, the
    crease ring above each upper lid and everything below the eyes.
    """
    c = CANONICAL_FACE_3D
    top = [i for i in T.FACE_OVAL if c[i, 1] < -4.5]
    across = np.clip((np.abs(c[list(_BROWS), 0]) - 1.5) / 4.3, 0.0, 1.0)
    values = np.concatenate([1.0 - (1.0 - BROW_OUTER) * across, np.full(len(top), BROW_FOREHEAD)])
    fixed = (
        set(tp.EYES[0])
        | set(tp.EYES[1])
        | set(tp.RIGHT_LID_ABOVE)
        | set(tp.LEFT_LID_ABOVE)
        | {i for i in range(tp.N_FACE) if c[i, 1] > BELOW_EYES_CM}
        | {i for i in T.FACE_OVAL if c[i, 1] > -3.0}
    )
    op = tp.harmonic_operator([*_BROWS, *top], sorted(fixed - set(_BROWS) - set(top)))
    return op @ values


@lru_cache(maxsize=1)
def smile_operator() -> np.ndarray:
    """``(468, 40 + 6 + 14)`` harmonic spread of smile handles: the lip handles
    (:data:`LIP_HANDLES` order), the cheeks, the lower lids (right eye first)."""
    c = CANONICAL_FACE_3D
    handles = (*LIP_HANDLES, *_CHEEKS, *_LOWER_LIDS)
    nose = {i for i in range(tp.N_FACE) if abs(c[i, 0]) < 1.3 and c[i, 1] < 2.4}
    fixed = (
        set(T.FACE_OVAL)
        | set(tp.RIGHT_LID_UPPER)
        | set(tp.LEFT_LID_UPPER)
        | set(tp.RIGHT_EYE_CORNERS)
        | set(tp.LEFT_EYE_CORNERS)
        | {i for i in range(tp.N_FACE) if c[i, 1] < -3.0}
        | nose
    )
    return tp.harmonic_operator(handles, sorted(fixed - set(handles)))


def _rotate_x(points: np.ndarray, pivot: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``(N, 3)`` points about the x axis through ``pivot``; positive opens the jaw."""
    c, s = np.cos(angle), np.sin(angle)
    rel = points - pivot
    out = rel.copy()
    out[:, 1] = c * rel[:, 1] - s * rel[:, 2]
    out[:, 2] = s * rel[:, 1] + c * rel[:, 2]
    return out + pivot


@dataclass(frozen=True)
class HeadFrame:
    """Similarity between head coordinates (cm) and a mesh's pixels: ``pix = s R h + t``."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    @staticmethod
    def fit(mesh: np.ndarray) -> HeadFrame:
        """Fit to a ``(478 | 468, 3)`` pixel mesh on the expression-free points."""
        pts = np.asarray(mesh, dtype=np.float64)[: tp.N_FACE, :3]
        s, r, t = similarity_fit(CANONICAL_FACE_3D[RIGID_POINTS], pts[RIGID_POINTS])
        return HeadFrame(s, r, t)

    def to_head(self, mesh: np.ndarray) -> np.ndarray:
        """Pixel points ``(N, 3)`` -> head coordinates."""
        return (
            (np.asarray(mesh, dtype=np.float64)[:, :3] - self.translation)
            @ self.rotation
            / self.scale
        )

    def to_pixels(self, head: np.ndarray) -> np.ndarray:
        """Head coordinates ``(N, 3)`` -> pixel points ``(N, 3)``."""
        return self.scale * head @ self.rotation.T + self.translation

    def displacement(self, delta: np.ndarray) -> np.ndarray:
        """Head-coordinate displacements ``(N, 3)`` -> pixel displacements ``(N, 2)``."""
        return (self.scale * delta @ self.rotation.T)[:, :2]


def lip_gaps(head: np.ndarray) -> np.ndarray:
    """``(9, 3)`` vectors from each upper inner-lip point to its lower partner."""
    return head[list(tp.MOUTH_LOWER)] - head[list(tp.MOUTH_UPPER)]


def _jaw_rate() -> float:
    """d(centre inner-lip gap)/d(jaw angle) in cm per radian, on the canonical face."""
    w = jaw_weights()
    c = CANONICAL_FACE_3D
    eps = 1e-3
    moved = c + w[:, None] * (_rotate_x(c, JAW_PIVOT, eps) - c)
    return float((lip_gaps(moved)[4, 1] - lip_gaps(c)[4, 1]) / eps)


class FaceRig:
    """Deform one face: ``FaceRig(mesh).displacements(pose)`` -> pixel offsets of 468 points.

    ``mesh``: ``(478 | 468, 3)`` pixel mesh of the source frame. The rig first
    *neutralises* it (closes the lips by rotating the jaw back and meeting the
    lips), so a pose is always rendered relative to a closed mouth, whatever the
    source showed.
    """

    def __init__(self, mesh: np.ndarray) -> None:
        self.frame = HeadFrame.fit(mesh)
        self.source = self.frame.to_head(np.asarray(mesh)[: tp.N_FACE])
        self.opening_angle, self.neutral = self.neutralise(self.source)
        corners = self.neutral[list(T.MOUTH_CORNERS)]
        self.mouth_centre = corners.mean(0)
        self.mouth_half_width = 0.5 * float(np.linalg.norm(corners[1] - corners[0]))
        self._smile: np.ndarray | None = None

    def smile_field(self) -> np.ndarray:
        """``(468, 3)`` head-coordinate displacement of a full smile (``smile = 1``)."""
        if self._smile is None:
            lips = self.neutral[list(LIP_HANDLES)]
            rel_x = lips[:, 0] - self.mouth_centre[0]
            across = np.clip(rel_x / self.mouth_half_width, -1.0, 1.0)
            handles = np.zeros((len(LIP_HANDLES) + len(_CHEEKS) + len(_LOWER_LIDS), 3))
            n = len(LIP_HANDLES)
            handles[:n, 0] = SMILE_WIDEN * rel_x
            handles[:n, 1] = -SMILE_LIFT_CM * across**2
            handles[n : n + len(_CHEEKS), 1] = -SMILE_CHEEK_CM
            k = len(tp.RIGHT_LID_LOWER)
            lid = np.sin(np.pi * (np.arange(k) + 1) / (k + 1))  # most in the middle
            handles[n + len(_CHEEKS) :, 1] = -SMILE_LID_CM * np.concatenate([lid, lid])
            self._smile = smile_operator() @ handles
        return self._smile

    @property
    def source_jaw_open(self) -> float:
        """The source's own lip parting as a :class:`Pose` ``jaw_open`` (0 = closed lips)."""
        return float(self.opening_angle / np.radians(JAW_MAX_DEG))

    @staticmethod
    def neutralise(head: np.ndarray) -> tuple[float, np.ndarray]:
        """Jaw angle (rad) that opened the mouth, and the mesh with the lips closed."""
        gap = float(lip_gaps(head)[4, 1])
        angle = max(gap, 0.0) / _jaw_rate()
        w = jaw_weights()
        closed = head + w[:, None] * (_rotate_x(head, JAW_PIVOT, -angle) - head)
        handles = np.zeros((len(LIP_HANDLES), 3))
        _close_lips(handles, closed, 1.0, opened_only=False)
        return angle, closed + lip_operator() @ handles

    def deform(self, pose: Pose, jaw_scale: float = 1.0) -> np.ndarray:
        """Head coordinates ``(468, 3)`` of the face in ``pose``."""
        head = self.neutral
        angle = np.radians(JAW_MAX_DEG) * float(np.clip(pose.jaw_open * jaw_scale, 0.0, 1.2))
        if angle:
            head = head + jaw_weights()[:, None] * (_rotate_x(head, JAW_PIVOT, angle) - head)
        handles = np.zeros((len(LIP_HANDLES), 3))
        lips = head[list(LIP_HANDLES)]
        spread = float(np.clip(pose.lip_spread, -1.0, 1.0))
        if spread:
            rel_x = lips[:, 0] - self.mouth_centre[0]
            k = SPREAD_WIDEN * spread if spread > 0 else PUCKER_NARROW * spread
            handles[:, 0] += k * rel_x
            if spread < 0:
                across = np.clip(rel_x / self.mouth_half_width, -1.0, 1.0)
                handles[:, 2] += spread * PUCKER_PROTRUDE_CM * (1.0 - across**2)
                handles[:, 1] += -spread * PUCKER_ROUND * (lips[:, 1] - self.mouth_centre[1])
        if pose.upper_lip_raise:
            n_up = len(_LIPS_UPPER)
            across = (lips[:n_up, 0] - self.mouth_centre[0]) / self.mouth_half_width
            profile = 1.0 - 0.6 * np.clip(np.abs(across), 0.0, 1.0)
            handles[:n_up, 1] -= LIP_RAISE_CM * float(pose.upper_lip_raise) * profile
        if pose.lip_closed:
            _close_lips(handles, head, float(np.clip(pose.lip_closed, 0.0, 1.0)))
        head = head + lip_operator() @ handles
        smile = float(np.clip(pose.smile, 0.0, 1.0))
        if smile:
            head = head + smile * self.smile_field()
        brow = float(np.clip(pose.brow_raise, 0.0, 1.0))
        if brow:
            lift = np.zeros_like(head)
            lift[:, 1] = -BROW_RAISE_CM * brow * brow_field()
            head = head + lift
        if pose.blink:
            head = head + eye_operator() @ lid_handles(head, float(np.clip(pose.blink, 0.0, 1.0)))
        return head

    def displacements(self, pose: Pose, jaw_scale: float = 1.0) -> np.ndarray:
        """``(468, 2)`` pixel offsets from the source mesh to the mesh in ``pose``."""
        return self.frame.displacement(self.deform(pose, jaw_scale) - self.source)


def _close_lips(
    handles: np.ndarray, head: np.ndarray, amount: float, opened_only: bool = True
) -> None:
    """Add to lip ``handles`` (rows in ``LIP_HANDLES`` order) the motion closing the inner gap.

    ``opened_only``: leave pairs whose lips already overlap; otherwise those are
    pulled apart until they meet too.
    """
    gaps = lip_gaps(head + lip_operator() @ handles)
    if opened_only:
        gaps[:, 1] = np.maximum(gaps[:, 1], 0.0)
    up = amount * UPPER_SHARE * gaps
    down = -amount * (1.0 - UPPER_SHARE) * gaps
    n = _N_LIP
    handles[0:n] += up
    handles[n : 2 * n] += OUTER_FOLLOW * up
    handles[2 * n : 3 * n] += down
    handles[3 * n : 4 * n] += OUTER_FOLLOW * down


def lid_handles(head: np.ndarray, amount: float) -> np.ndarray:
    """Lid-handle displacements ``(46, 3)`` closing both eyes by ``amount``.

    The lids meet on a smoothed curve near the lower lid (``LID_CLOSE`` of the way
    down), so the closed lash line is a clean arc instead of the lower lid's jitter.
    """
    rows = []
    for upper, lower, corners in (
        (tp.RIGHT_LID_UPPER, tp.RIGHT_LID_LOWER, tp.RIGHT_EYE_CORNERS),
        (tp.LEFT_LID_UPPER, tp.LEFT_LID_LOWER, tp.LEFT_EYE_CORNERS),
    ):
        up, low = head[list(upper)], head[list(lower)]
        meet = low + (1.0 - LID_CLOSE) * (up - low)
        chain = np.vstack([head[corners[0]], meet, head[corners[1]]])
        meet = 0.25 * chain[:-2] + 0.5 * chain[1:-1] + 0.25 * chain[2:]
        down = amount * (meet - up)
        rows += [down, amount * (meet - low), np.zeros((2, 3)), LID_FOLD * down]
    return np.vstack(rows)
