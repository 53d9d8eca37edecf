"""Body, hand and face keypoints per frame, in OpenPose layouts, from MediaPipe models.

``PoseEstimator.update(frame, t)`` returns a ``FramePose``: every person found,
each with BODY_25 body points, optionally both hands (OpenPose 21-point layout)
and the 70-point face, in *source* pixels.

- Body: MediaPipe's pose landmarker "full" (33 points, mapped as in
  ``avatarlab.body.layouts``). Frames larger than ``inference_side`` are
  downscaled for the model only; MediaPipe's normalised outputs are scaled by
  the source size, so coordinates stay in source pixels.
- Hands: one MediaPipe hand graph per wrist, run on a square crop placed by
  OpenPose's own hand-box rule (``src/openpose/hand/handDetector.cpp``, as
  ``handDetect`` in ControlNet's ``annotator/openpose/util.py``: centre =
  wrist + 0.33 (wrist - elbow), side = 1.5 max(|wrist - elbow|,
  0.9 |elbow - shoulder|)). Hands therefore belong to the body they hang from;
  a found hand whose wrist lands far from the body's wrist is dropped.
- Face: our 478-point mesh (``avatarlab.face``) in tracking mode on a crop
  around the pose's head points, re-centred on the last mesh.
- Several people: MediaPipe's pose solution finds **one** person per image.
  With ``max_people == 1`` it runs on the whole frame (the largest, most
  central person); when it finds nobody, our face detector (which tiles the
  frame) is asked for a face and the pose runs on a person-sized crop around
  it, which finds small and far people the whole-frame detector misses. With
  ``max_people > 1`` each person is followed by a pose graph on a crop
  around their last box; new people are found from faces (every
  ``REDETECT_EVERY`` frames, and every frame while someone is missing) that no
  followed person covers. Ids come from :class:`avatarlab.body.track.PersonTracker`
  (Hungarian matching on box IoU and keypoint distance, with motion prediction):
  they survive a person going unseen for up to ``MAX_GAP`` frames and people
  crossing or swapping order, and are never reused. People whose face the
  detector cannot see (turned away) are found only in the single-person mode.
- Smoothing: One-Euro filters (``avatarlab.face.filters``) in units of the
  person's height, kept per id (hand and face graphs too); a person back after
  more than ``SMOOTH_GAP`` unseen frames (and the single person after any miss)
  starts from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from avatarlab.body import _models
from avatarlab.body.layouts import (
    NUM_FACE_70,
    NUM_HAND,
    mediapipe_to_body25,
    mesh_to_face70,
)
from avatarlab.body.track import MAX_GAP, PersonTracker
from avatarlab.errors import OptionError
from avatarlab.face import models as face_models
from avatarlab.face.boxes import (
    apply_affine,
    box_from_points,
    check_frame,
    invert_affine,
    iou,
    square_around,
)
from avatarlab.face.detect import Detection, FaceDetector
from avatarlab.face.filters import OneEuroFilter
from avatarlab.face.mesh import (
    CROP_SCALE,
    CROP_SIZE,
    crop_square,
    crop_to_frame,
    landmarks_to_array,
)
from avatarlab.face.topology import NOSE_TIP, NUM_MESH_POINTS

INFERENCE_SIDE = 1280
"""Longest side a frame is downscaled to before the pose model sees it (it reads 256 px)."""

PERSON_CROP_SIDE = 512
"""Pixels of the square crop a followed person's pose graph reads."""

HAND_CROP_SIDE = 256
"""Pixels of the square crop each hand graph reads."""

REDETECT_EVERY = 5
"""With several people, frames between face-detector passes that look for newcomers."""

FACE_HEIGHTS_PER_PERSON = 8.0
"""Side of the square person crop around a detected face, in face-box heights."""

SMOOTH_GAP = 2
"""A person back after more than this many unseen frames has their smoothing restarted."""

HAND_MATCH = 0.35
"""A found hand is kept when its wrist is within this fraction of the hand crop side of the body's wrist."""

_PIXEL_DTYPE = np.float32


@dataclass(frozen=True)
class EstimatorOptions:
    """What ``PoseEstimator`` finds and how.

    Attributes:
        hands: also find both hands (OpenPose 21-point layout).
        face: also find the 70-point face (68 iBUG points + 2 pupils).
        smooth: One-Euro smoothing over time (video only).
        min_confidence: keypoints with MediaPipe visibility below this are missing.
        max_people: most people to report per frame (MediaPipe's pose model is single-person; see module doc).
        static: treat every frame as an unrelated image (no tracking).
        min_cutoff: One-Euro cutoff at rest, Hz.
        beta: One-Euro speed coefficient, per person height per second.
        d_cutoff: One-Euro cutoff of the speed estimate, Hz.
    """

    hands: bool = False
    face: bool = False
    smooth: bool = False
    min_confidence: float = 0.5
    max_people: int = 1
    static: bool = False
    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise OptionError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not 1 <= self.max_people <= 16:
            raise OptionError(f"max_people must be between 1 and 16, got {self.max_people}")
        if self.min_cutoff <= 0 or self.beta < 0 or self.d_cutoff <= 0:
            raise OptionError("min_cutoff and d_cutoff must be > 0 and beta >= 0")


@dataclass(frozen=True)
class Person:
    """One person in one frame; every coordinate is in source pixels.

    Arrays are float32 ``(K, 3)`` rows of x, y, confidence; a missing point has
    NaN x, y and confidence 0. ``body``: BODY_25 ``(25, 3)``; ``hand_left`` /
    ``hand_right``: ``(21, 3)`` (None when hands were not asked for);
    ``face``: ``(70, 3)`` (None when not asked for); ``box``: ``(4,)`` x0, y0,
    x1, y1 around the found body points. ``id``: stable across frames.
    """

    id: int
    body: np.ndarray
    hand_left: np.ndarray | None = None
    hand_right: np.ndarray | None = None
    face: np.ndarray | None = None
    box: np.ndarray = field(default_factory=lambda: np.full(4, np.nan, dtype=np.float32))


@dataclass(frozen=True)
class FramePose:
    """Everyone found in one frame: ``frame_size`` is (W, H) of the source frame."""

    index: int
    t: float
    frame_size: tuple[int, int]
    people: list[Person]

    @property
    def empty(self) -> bool:
        """Whether nobody was found."""
        return not self.people


def missing(n: int) -> np.ndarray:
    """``(n, 3)`` float32 rows of a part that was not found (NaN x, y; confidence 0)."""
    out = np.full((n, 3), np.nan, dtype=np.float32)
    out[:, 2] = 0.0
    return out


def _drop_weak(points: np.ndarray, size: tuple[int, int], min_confidence: float) -> np.ndarray:
    """Mark points below ``min_confidence`` or outside the frame as missing (in place)."""
    w, h = size
    x, y, c = points[:, 0], points[:, 1], points[:, 2]
    with np.errstate(invalid="ignore"):
        bad = ~((c >= min_confidence) & (x >= 0) & (x < w) & (y >= 0) & (y < h))
    points[bad, :2] = np.nan
    points[bad, 2] = 0.0
    return points


def _pose_points(result: Any) -> np.ndarray | None:
    """MediaPipe pose result -> ``(33, 3)`` normalised x, y, visibility, or None."""
    if result.pose_landmarks is None:
        return None
    marks = result.pose_landmarks.landmark
    return np.array([(p.x, p.y, p.visibility) for p in marks], dtype=np.float32)


def _box_of(points: np.ndarray) -> np.ndarray | None:
    ok = np.isfinite(points[:, 0])
    return box_from_points(points[ok]) if ok.any() else None


class _Person:
    """State kept per person id: hand and face graphs, last face box, One-Euro filter."""

    def __init__(self, pid: int, options: EstimatorOptions) -> None:
        self.id = pid
        self.options = options
        self.hands: list[Any | None] = [None, None]
        self.mesh: Any | None = None
        self.mesh_box: np.ndarray | None = None
        self.filter = OneEuroFilter(options.min_cutoff, options.beta, options.d_cutoff)
        self.unit: float | None = None

    def close(self) -> None:
        for graph in (self.mesh, *self.hands):
            if graph is not None:
                graph.close()

    def reset_tracking(self) -> None:
        """Forget motion: the next frame is filtered and tracked from scratch."""
        self.filter.reset()
        self.unit = None
        self.mesh_box = None


class _Follower:
    """A pose graph following one person on a crop around their last box (several people).

    Followers carry no id: whoever a follower finds is matched to an id by the
    tracker, so a follower that drifts to a neighbour cannot take the id with it.
    """

    def __init__(self, options: EstimatorOptions) -> None:
        self.pose = _models.new_pose(options.static)
        self.box: np.ndarray | None = None

    def close(self) -> None:
        self.pose.close()

    def pose_in_crop(
        self, frame: np.ndarray, cx: float, cy: float, side: float
    ) -> np.ndarray | None:
        """The ``(33, 3)`` pose in frame pixels from a crop, or None."""
        size = PERSON_CROP_SIDE
        crop, matrix = crop_square(frame, cx, cy, side, size)
        norm = _pose_points(self.pose.process(crop))
        if norm is None:
            return None
        xyz = np.concatenate([norm[:, :2], np.zeros((len(norm), 1), np.float32)], axis=1)
        out = norm.copy()
        out[:, :2] = crop_to_frame(xyz, matrix, size)[:, :2]
        return out


_Found = tuple[_Follower, np.ndarray, np.ndarray]
"""A follower, the ``(33, 3)`` pose it found and the pose's ``(4,)`` box."""


class PoseEstimator:
    """Stream frames in order with ``update``; one instance per video (graphs keep state)."""

    def __init__(self, options: EstimatorOptions | None = None) -> None:
        self.options = options or EstimatorOptions()
        self._multi = self.options.max_people > 1
        self._main = None if self._multi else _models.new_pose(self.options.static)
        self._fallback: Any | None = None  # static pose graph for face-found crops
        self._fallback_hit = False  # the last frame's person came from a face crop
        self._detector = FaceDetector("auto", min_score=0.5)
        self._followers: list[_Follower] = []
        self._idle: list[_Follower] = []  # graphs that lost their person, for newcomers
        self._people: dict[int, _Person] = {}
        self._tracker = PersonTracker(self.options.min_confidence, MAX_GAP)
        self._single: _Person | None = None
        self._index = -1
        self._t: float | None = None

    def close(self) -> None:
        """Release every MediaPipe graph."""
        for graph in (self._main, self._fallback):
            if graph is not None:
                graph.close()
        for graph in (*self._followers, *self._idle, *self._people.values(), self._single):
            if graph is not None:
                graph.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, frame: np.ndarray, t: float | None = None) -> FramePose:
        """Everyone in the next frame (RGB uint8 ``(H, W, 3)``); ``t`` in seconds."""
        frame = check_frame(frame)
        self._index += 1
        if t is None:
            t = 0.0 if self._t is None else self._t + 0.04
        self._t = t
        size = (frame.shape[1], frame.shape[0])
        found = self._multi_people(frame) if self._multi else self._one_person(frame)
        people = [self._finish(frame, person, pts, t) for person, pts in found]
        people.sort(key=lambda p: p.id)
        return FramePose(self._index, float(t), size, people)

    def _one_person(self, frame: np.ndarray) -> list[tuple[_Person, np.ndarray]]:
        assert self._main is not None
        h, w = frame.shape[:2]
        scale = min(1.0, INFERENCE_SIDE / max(h, w))
        small = (
            frame
            if scale == 1.0
            else cv2.resize(
                frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        )
        pts = _pose_points(self._main.process(small))
        if pts is not None:
            pts[:, 0] *= w
            pts[:, 1] *= h
            self._fallback_hit = False
        elif self.options.static or self._fallback_hit or self._index % REDETECT_EVERY == 0:
            pts = self._from_faces(frame)
            self._fallback_hit = pts is not None
        if self._single is None:
            self._single = _Person(0, self.options)
        if pts is None:
            self._single.reset_tracking()
            return []
        return [(self._single, pts)]

    def _from_faces(self, frame: np.ndarray) -> np.ndarray | None:
        """Pose on a person-sized crop around the largest face (small or far people)."""
        faces = self._detector.detect(frame)
        if not faces:
            return None
        if self._fallback is None:
            self._fallback = _models.new_pose(True)
        cx, cy, side = _person_square(faces[0])
        crop, matrix = crop_square(frame, cx, cy, side, PERSON_CROP_SIDE)
        norm = _pose_points(self._fallback.process(crop))
        if norm is None:
            return None
        norm[:, :2] = apply_affine(invert_affine(matrix), norm[:, :2] * PERSON_CROP_SIDE)
        return norm

    def _multi_people(self, frame: np.ndarray) -> list[tuple[_Person, np.ndarray]]:
        found: list[_Found] = []
        dropped = False
        for follower in self._followers:
            assert follower.box is not None
            pts = follower.pose_in_crop(frame, *square_around(follower.box, 1.5))
            box = None if pts is None else _box_of(pts[pts[:, 2] >= self.options.min_confidence])
            dropped |= pts is None or box is None
            if pts is None or box is None:
                self._idle.append(follower)  # lost its person: its graph starts afresh
            elif any(iou(box, b) > 0.5 for _, _, b in found):
                follower.close()  # followed someone else's person
            else:
                follower.box = box
                found.append((follower, pts, box))
        self._followers = [f for f, _, _ in found]
        look = (
            self.options.static
            or self._index % REDETECT_EVERY == 0
            or dropped
            or self._tracker.lost
        )
        if look and len(found) < self.options.max_people:
            found.extend(self._newcomers(frame, found))
        assigned, retired = self._tracker.update(
            self._index, [b for _, _, b in found], [p for _, p, _ in found]
        )
        for pid in retired:
            person = self._people.pop(pid, None)
            if person is not None:
                person.close()
        out: list[tuple[_Person, np.ndarray]] = []
        for (_, pts, _), a in zip(found, assigned, strict=True):
            person = self._people.get(a.id)
            if person is None:
                person = self._people[a.id] = _Person(a.id, self.options)
            elif a.gap > SMOOTH_GAP:
                person.reset_tracking()
            out.append((person, pts))
        return out

    def _newcomers(self, frame: np.ndarray, found: list[_Found]) -> list[_Found]:
        """People whose faces no followed person covers; each gets a follower."""
        new: list[_Found] = []
        for face in self._detector.detect(frame):
            if len(found) + len(new) >= self.options.max_people:
                break
            centre = 0.5 * (face.box[:2] + face.box[2:])
            boxes = [b for _, _, b in found + new]
            if any(_inside(centre, b) for b in boxes):
                continue
            follower = self._idle.pop() if self._idle else _Follower(self.options)
            pts = follower.pose_in_crop(_hide(frame, boxes), *_person_square(face))
            box = None if pts is None else _box_of(pts[pts[:, 2] >= self.options.min_confidence])
            if pts is None or box is None or not _inside(centre, _grow(box, 0.15)):
                self._idle.append(follower)
                continue
            follower.box = box
            self._followers.append(follower)
            new.append((follower, pts, box))
        return new

    def _finish(self, frame: np.ndarray, person: _Person, pts: np.ndarray, t: float) -> Person:
        """Map to BODY_25, add hands and face, smooth, drop weak points."""
        size = (frame.shape[1], frame.shape[0])
        raw = pts.copy()
        body = mediapipe_to_body25(pts)
        hands: list[np.ndarray | None] = [None, None]
        if self.options.hands:
            hands = [self._hand(frame, person, raw, side) for side in (0, 1)]
            _drop_duplicate_hand(hands, raw)
        face = self._face(frame, person, raw) if self.options.face else None
        parts = [body] + [h for h in (*hands, face) if h is not None]
        if self.options.smooth and not self.options.static:
            parts = self._smooth(person, parts, t)
        body = _drop_weak(parts[0], size, self.options.min_confidence)
        rest = iter(parts[1:])
        hl = _drop_weak(next(rest), size, 0.0) if hands[0] is not None else None
        hr = _drop_weak(next(rest), size, 0.0) if hands[1] is not None else None
        fc = _drop_weak(next(rest), size, 0.0) if face is not None else None
        if self.options.hands:
            hl = missing(NUM_HAND) if hl is None else hl
            hr = missing(NUM_HAND) if hr is None else hr
        if self.options.face:
            fc = missing(NUM_FACE_70) if fc is None else fc
        box = _box_of(body)
        return Person(
            person.id,
            body,
            hl,
            hr,
            fc,
            box if box is not None else np.full(4, np.nan, dtype=np.float32),
        )

    def _smooth(self, person: _Person, parts: list[np.ndarray], t: float) -> list[np.ndarray]:
        """One-Euro over all x, y at once in person-height units (fixed while tracked)."""
        stack = np.concatenate([p[:, :2] for p in parts], axis=0)
        if person.unit is None:
            box = _box_of(parts[0])
            person.unit = float(max(box[3] - box[1], 1.0)) if box is not None else 1.0
        smooth = (person.filter(stack / person.unit, t) * person.unit).astype(np.float32)
        out, start = [], 0
        for p in parts:
            q = p.copy()
            q[:, :2] = smooth[start : start + len(p)]
            start += len(p)
            out.append(q)
        return out

    def _hand(
        self, frame: np.ndarray, person: _Person, pts: np.ndarray, side: int
    ) -> np.ndarray | None:
        """Hand ``side`` (0 left, 1 right) ``(21, 3)`` in frame pixels, or None."""
        square = _hand_square(pts, side, self.options.min_confidence)
        if square is None:
            return None
        graph = person.hands[side]
        if graph is None:
            graph = person.hands[side] = _models.new_hands(self.options.static)
        cx, cy, s = square
        crop, matrix = crop_square(frame, cx, cy, s, HAND_CROP_SIDE)
        result = graph.process(crop)
        if not result.multi_hand_landmarks:
            return None
        norm = landmarks_to_array(result.multi_hand_landmarks[0])
        xy = apply_affine(invert_affine(matrix), norm[:, :2] * HAND_CROP_SIDE).astype(_PIXEL_DTYPE)
        wrist = pts[_WRISTS[side], :2]
        if np.linalg.norm(xy[0] - wrist) > HAND_MATCH * s:
            return None
        out = np.ones((NUM_HAND, 3), dtype=np.float32)
        out[:, :2] = xy
        return out

    def _face(self, frame: np.ndarray, person: _Person, pts: np.ndarray) -> np.ndarray | None:
        """The 70-point face ``(70, 3)`` of this person, or None."""
        head = _head_square(pts, self.options.min_confidence)
        if head is None:
            person.mesh_box = None
            return None
        cx, cy, side = head
        if person.mesh_box is not None:
            mx, my, mside = square_around(person.mesh_box, CROP_SCALE)
            if np.hypot(mx - cx, my - cy) < 0.25 * side:
                cx, cy, side = mx, my, mside
        if person.mesh is None:
            person.mesh = face_models.new_mediapipe_mesh(static=self.options.static, refine=True)
        crop, matrix = crop_square(frame, cx, cy, side, CROP_SIZE)
        result = person.mesh.process(crop)
        if not result.multi_face_landmarks:
            person.mesh_box = None
            return None
        mesh = np.full((NUM_MESH_POINTS, 3), np.nan, dtype=np.float32)
        norm = landmarks_to_array(result.multi_face_landmarks[0])
        mesh[: len(norm)] = crop_to_frame(norm, matrix, CROP_SIZE)
        if np.hypot(*(mesh[NOSE_TIP, :2] - pts[0, :2])) > 0.25 * side:
            person.mesh_box = None
            return None
        person.mesh_box = box_from_points(mesh[:468])
        out = np.ones((NUM_FACE_70, 3), dtype=np.float32)
        out[:, :2] = mesh_to_face70(mesh)
        out[~np.isfinite(out[:, 0]), 2] = 0.0
        return out


# MediaPipe pose indices: (left, right) wrist, elbow, shoulder, index, pinky.
_WRISTS = (15, 16)
_ELBOWS = (13, 14)
_SHOULDERS = (11, 12)
_KNUCKLES = ((17, 19), (18, 20))
_HEAD = (0, 2, 5, 7, 8, 9, 10)  # nose, eyes, ears, mouth corners


def _hand_square(pts: np.ndarray, side: int, min_conf: float) -> tuple[float, float, float] | None:
    """Square ``(cx, cy, side)`` around hand ``side`` by OpenPose's hand-box rule, or None."""
    wrist, elbow, shoulder = pts[_WRISTS[side]], pts[_ELBOWS[side]], pts[_SHOULDERS[side]]
    if wrist[2] < min_conf:
        return None
    if elbow[2] >= min_conf:
        centre = wrist[:2] + 0.33 * (wrist[:2] - elbow[:2])
        forearm = float(np.linalg.norm(wrist[:2] - elbow[:2]))
        upper = float(np.linalg.norm(elbow[:2] - shoulder[:2])) if shoulder[2] >= min_conf else 0.0
        s = 1.5 * max(forearm, 0.9 * upper)
    else:
        knuckles = pts[list(_KNUCKLES[side]), :2].mean(axis=0)
        centre = 0.5 * (wrist[:2] + knuckles)
        s = 5.0 * float(np.linalg.norm(knuckles - wrist[:2]))
    if s < 8:
        return None
    return float(centre[0]), float(centre[1]), s


def _head_square(pts: np.ndarray, min_conf: float) -> tuple[float, float, float] | None:
    """Mesh crop ``(cx, cy, side)`` around the head points of a pose, or None."""
    head = pts[list(_HEAD)]
    if pts[0, 2] < min_conf:
        return None
    centre = head[:, :2].mean(axis=0)
    ears = float(np.linalg.norm(pts[7, :2] - pts[8, :2]))
    eyes = float(np.linalg.norm(pts[2, :2] - pts[5, :2]))
    width = max(ears, 2.2 * eyes)
    if width < 6:
        return None
    return float(centre[0]), float(centre[1]), CROP_SCALE * 1.25 * width


def _drop_duplicate_hand(hands: list[np.ndarray | None], pts: np.ndarray) -> None:
    """When both graphs found the same hand, keep it only on the side whose wrist is closer."""
    left, right = hands
    if left is None or right is None:
        return
    span = float(np.linalg.norm(box_from_points(left)[2:] - box_from_points(left)[:2]))
    if np.linalg.norm(left[0, :2] - right[0, :2]) > 0.2 * span:
        return
    dl = np.linalg.norm(left[0, :2] - pts[_WRISTS[0], :2])
    dr = np.linalg.norm(right[0, :2] - pts[_WRISTS[1], :2])
    hands[1 if dl <= dr else 0] = None


def _person_square(face: Detection) -> tuple[float, float, float]:
    """Square crop ``(cx, cy, side)`` likely to hold the whole person below a face."""
    x0, y0, x1, y1 = (float(v) for v in face.box)
    fh = max(y1 - y0, x1 - x0, 1.0)
    side = FACE_HEIGHTS_PER_PERSON * fh
    return 0.5 * (x0 + x1), y0 - 0.5 * fh + 0.5 * side, side


def _hide(frame: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """A copy of ``frame`` with the (slightly grown) boxes of people already found painted grey.

    A newcomer's crop often shows a neighbour too, and the single-person pose
    model would lock on to whoever it likes best.
    """
    if not boxes:
        return frame
    out = frame.copy()
    h, w = frame.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = _grow(box, 0.1)
        out[max(0, int(y0)) : min(h, int(y1) + 1), max(0, int(x0)) : min(w, int(x1) + 1)] = 128
    return out


def _inside(point: np.ndarray, box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _grow(box: np.ndarray, frac: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] - frac * w, box[1] - frac * h, box[2] + frac * w, box[3] + frac * h])
