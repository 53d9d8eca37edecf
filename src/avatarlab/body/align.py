"""Pose alignment: rescale a driving pose sequence to a reference person's body proportions.

What MusePose's ``pose_align.py`` (TMElyralab/MusePose, ``align_img`` and
``run_align_video_with_filterPose_translate_smooth``) does, on our BODY_25
people in pixel coordinates:

1. Per body part, a scale ``reference length / driving length`` measured once,
   on the driving sequence's alignment frame: neck (nose-neck), face (ear to
   ear), shoulders (shoulder to shoulder), upper arms, lower arms, hands, body
   (neck to the hips' midpoint), upper legs, lower legs. Paired limbs use the
   mean of the left and right ratios; the hand scale is the mean of the
   wrist-to-finger-base ratio and the two arm scales. A scale that cannot be
   measured (a part missing in either pose) is the mean of the measured ones.
2. Every driving frame is rebuilt from the neck outwards: each point is put
   at its (already moved) parent plus its original offset from that parent
   times the part's scale. Directions, hence joint angles, are kept exactly;
   limb lengths become the reference's on the alignment frame and follow the
   driving video's relative changes (foreshortening) elsewhere.
3. Everything is shifted so the alignment frame's neck lands on the
   reference's neck; coordinates are then in the reference image's pixels.

Differences from MusePose, on purpose: the face points move with the head
(scaled by the face scale about the nose) where MusePose leaves them where the
driving face was; the BODY_25 extras follow their parents (mid-hip with the
hips, feet with the ankles, scaled by the lower-leg scale); a point whose
parent is missing in a frame is dropped, where MusePose would place it
relative to a -1 placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avatarlab.body.estimate import FramePose, Person
from avatarlab.errors import NoPersonError, describe_frames

# BODY_25 indices.
NOSE, NECK = 0, 1
R_SHOULDER, R_ELBOW, R_WRIST = 2, 3, 4
L_SHOULDER, L_ELBOW, L_WRIST = 5, 6, 7
MID_HIP, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = 8, 9, 10, 11, 12, 13, 14
R_EYE, L_EYE, R_EAR, L_EAR = 15, 16, 17, 18
L_FEET = (19, 20, 21)
R_FEET = (22, 23, 24)

PARTS = (
    "neck", "face", "shoulder", "arm_upper", "arm_lower", "hand", "body_len", "leg_upper", "leg_lower",
)  # fmt: skip
"""Body parts with their own scale, in MusePose's order."""

# (child, parent, part): rebuilt in this order, parents first.
_CHAIN: tuple[tuple[int, int, str], ...] = (
    (NOSE, NECK, "neck"),
    (R_EYE, NOSE, "face"),
    (L_EYE, NOSE, "face"),
    (R_EAR, NOSE, "face"),
    (L_EAR, NOSE, "face"),
    (R_SHOULDER, NECK, "shoulder"),
    (L_SHOULDER, NECK, "shoulder"),
    (R_ELBOW, R_SHOULDER, "arm_upper"),
    (L_ELBOW, L_SHOULDER, "arm_upper"),
    (R_WRIST, R_ELBOW, "arm_lower"),
    (L_WRIST, L_ELBOW, "arm_lower"),
    (R_HIP, NECK, "body_len"),
    (L_HIP, NECK, "body_len"),
    (MID_HIP, NECK, "body_len"),
    (R_KNEE, R_HIP, "leg_upper"),
    (L_KNEE, L_HIP, "leg_upper"),
    (R_ANKLE, R_KNEE, "leg_lower"),
    (L_ANKLE, L_KNEE, "leg_lower"),
    *((f, L_ANKLE, "leg_lower") for f in L_FEET),
    *((f, R_ANKLE, "leg_lower") for f in R_FEET),
)

_HAND_BASES = (1, 5, 9, 13, 17)


@dataclass(frozen=True)
class AlignScales:
    """Per-part scales (reference / driving) and the shift that puts the driving neck on the reference's.

    ``scales`` maps each name in ``PARTS`` to a ratio; ``measured`` lists the
    parts measured (the others took the mean); ``offset`` is ``(2,)`` pixels;
    ``pivot`` is the driving alignment frame's neck ``(2,)`` pixels.
    """

    scales: dict[str, float]
    measured: tuple[str, ...]
    offset: np.ndarray
    pivot: np.ndarray


def _dist(p: np.ndarray, a: int, b: int) -> float:
    if p[a, 2] <= 0 or p[b, 2] <= 0:
        return float("nan")
    return float(np.linalg.norm(p[a, :2] - p[b, :2]))


def _hip_mid(p: np.ndarray) -> np.ndarray | None:
    if p[R_HIP, 2] <= 0 or p[L_HIP, 2] <= 0:
        return None
    return 0.5 * (p[R_HIP, :2] + p[L_HIP, :2])


def _ratio(ref: float, drv: float) -> float:
    return ref / drv if np.isfinite(ref) and np.isfinite(drv) and drv > 1e-6 else float("nan")


def _pair(ref: np.ndarray, drv: np.ndarray, pairs: Sequence[tuple[int, int]]) -> float:
    """Mean of the measurable ref/driving ratios of paired limbs (left, right)."""
    vals = [_ratio(_dist(ref, a, b), _dist(drv, a, b)) for a, b in pairs]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _hand_ratio(ref: Person, drv: Person) -> float:
    vals = []
    for rh, dh in ((ref.hand_left, drv.hand_left), (ref.hand_right, drv.hand_right)):
        if rh is None or dh is None:
            continue
        for b in _HAND_BASES:
            vals.append(_ratio(_dist(rh, 0, b), _dist(dh, 0, b)))
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def alignment_scales(reference: Person, driving: Person) -> AlignScales:
    """Scales and offset that map ``driving`` (alignment frame) onto ``reference``'s proportions.

    Raises:
        NoPersonError: the neck (both shoulders) is missing in either pose.
    """
    ref, drv = reference.body, driving.body
    if ref[NECK, 2] <= 0 or drv[NECK, 2] <= 0:
        raise NoPersonError(
            "pose alignment needs both shoulders (the neck) in the reference and the driving "
            "alignment frame: choose another align_frame or a reference showing the upper body"
        )
    s: dict[str, float] = {
        "neck": _ratio(_dist(ref, NOSE, NECK), _dist(drv, NOSE, NECK)),
        "face": _ratio(_dist(ref, R_EAR, L_EAR), _dist(drv, R_EAR, L_EAR)),
        "shoulder": _ratio(_dist(ref, R_SHOULDER, L_SHOULDER), _dist(drv, R_SHOULDER, L_SHOULDER)),
        "arm_upper": _pair(ref, drv, ((R_SHOULDER, R_ELBOW), (L_SHOULDER, L_ELBOW))),
        "arm_lower": _pair(ref, drv, ((R_ELBOW, R_WRIST), (L_ELBOW, L_WRIST))),
        "leg_upper": _pair(ref, drv, ((R_HIP, R_KNEE), (L_HIP, L_KNEE))),
        "leg_lower": _pair(ref, drv, ((R_KNEE, R_ANKLE), (L_KNEE, L_ANKLE))),
    }
    rh, dh = _hip_mid(ref), _hip_mid(drv)
    s["body_len"] = (
        _ratio(float(np.linalg.norm(ref[NECK, :2] - rh)), float(np.linalg.norm(drv[NECK, :2] - dh)))
        if rh is not None and dh is not None
        else float("nan")
    )
    hand = _hand_ratio(reference, driving)
    arms = [v for v in (s["arm_upper"], s["arm_lower"]) if np.isfinite(v)]
    pool = ([hand] if np.isfinite(hand) else []) + arms
    s["hand"] = float(np.mean(pool)) if pool else float("nan")
    measured = tuple(k for k in PARTS if np.isfinite(s[k]))
    fill = float(np.mean([s[k] for k in measured])) if measured else 1.0
    scales = {k: (s[k] if np.isfinite(s[k]) else fill) for k in PARTS}
    offset = (ref[NECK, :2] - drv[NECK, :2]).astype(np.float64)
    return AlignScales(scales, measured, offset, drv[NECK, :2].astype(np.float64))


def _scaled(
    points: np.ndarray | None, old: np.ndarray, new: np.ndarray, scale: float, valid: bool
) -> np.ndarray | None:
    """Points moved with an anchor from ``old`` to ``new`` and scaled about it."""
    if points is None:
        return None
    out = points.copy()
    ok = np.isfinite(out[:, 0]) & (out[:, 2] > 0)
    if not valid:
        ok[:] = False
    out[ok, :2] = new + scale * (points[ok, :2] - old)
    out[~ok, :2] = np.nan
    out[~ok, 2] = 0.0
    return out


def align_person(person: Person, scales: AlignScales) -> Person:
    """``person`` (a driving frame) rebuilt with the reference's proportions, in reference pixels."""
    old = person.body
    new = old.copy()
    if old[NECK, 2] <= 0:
        new[:, :2] = np.nan
        new[:, 2] = 0.0
    else:
        new[NECK, :2] = old[NECK, :2] + scales.offset
        for child, parent, part in _CHAIN:
            if old[child, 2] <= 0 or old[parent, 2] <= 0 or new[parent, 2] <= 0:
                new[child, :2] = np.nan
                new[child, 2] = 0.0
                continue
            new[child, :2] = new[parent, :2] + scales.scales[part] * (
                old[child, :2] - old[parent, :2]
            )
    hand = scales.scales["hand"]
    face_ok = old[NOSE, 2] > 0 and new[NOSE, 2] > 0
    return Person(
        id=person.id,
        body=new,
        hand_left=_scaled(
            person.hand_left,
            old[L_WRIST, :2],
            new[L_WRIST, :2],
            hand,
            old[L_WRIST, 2] > 0 and new[L_WRIST, 2] > 0,
        ),
        hand_right=_scaled(
            person.hand_right,
            old[R_WRIST, :2],
            new[R_WRIST, :2],
            hand,
            old[R_WRIST, 2] > 0 and new[R_WRIST, 2] > 0,
        ),
        face=_scaled(person.face, old[NOSE, :2], new[NOSE, :2], scales.scales["face"], face_ok),
        box=person.box,
    )


def align_sequence(
    reference: FramePose, driving: Sequence[FramePose], align_frame: int = 0
) -> tuple[AlignScales, list[FramePose], int]:
    """Align the first person of every driving frame to the first person of ``reference``.

    The scales come from the first driving frame at or after ``align_frame``
    whose person has a neck. Returns the scales, the aligned frames (at the
    reference's frame size; frames with nobody stay empty) and the frame used.

    Raises:
        NoPersonError: nobody in the reference, or no usable driving frame.
    """
    if reference.empty or reference.people[0].body[NECK, 2] <= 0:
        raise NoPersonError(
            "no person with visible shoulders in the reference image: use a photo showing "
            "the person's upper body"
        )
    usable = [f.index for f in driving[align_frame:] if f.people and f.people[0].body[NECK, 2] > 0]
    if not usable:
        empty = [f.index for f in driving if f.empty]
        raise NoPersonError(
            f"no driving frame from {align_frame} on shows a person with visible shoulders "
            f"(frames without anybody: {describe_frames(empty)}); use another driving video",
            empty,
        )
    first = next(f for f in driving if f.index == usable[0])
    scales = alignment_scales(reference.people[0], first.people[0])
    out = [
        FramePose(
            f.index,
            f.t,
            reference.frame_size,
            [align_person(f.people[0], scales)] if f.people else [],
        )
        for f in driving
    ]
    return scales, out, usable[0]


def limb_directions(body: np.ndarray) -> np.ndarray:
    """Angle in degrees of every ``_CHAIN`` bone (child minus parent), NaN where missing: ``(len(_CHAIN),)``."""
    out = np.full(len(_CHAIN), np.nan)
    for k, (child, parent, _) in enumerate(_CHAIN):
        if body[child, 2] > 0 and body[parent, 2] > 0:
            d = body[child, :2] - body[parent, :2]
            out[k] = np.degrees(np.arctan2(d[1], d[0]))
    return out
