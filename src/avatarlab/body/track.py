"""Stable person ids across frames: match each frame's people to tracks by box and keypoints.

``PersonTracker.update(index, boxes, points)`` gives every person found in frame
``index`` an id. Tracks are matched with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on a cost of ``1 - IoU`` between the
track's predicted box and the found box, plus the median distance of the
keypoints both confidently have, in units of the taller of the two bodies (medians
shrug off the few points a pose model misplaces). Each pair is scored both with the
track's predicted motion and without it, and the better score counts, so one
misplaced pose (a wrong velocity) cannot lose the person. The prediction moves the last
box and keypoints on by the track's velocity (pixels per frame, the median step
of the common keypoints) times the frames since it was last seen, so people who
cross or swap order keep their ids. A track that finds nobody is kept for ``max_gap`` frames and
takes its id back when its person returns near where it was heading; after that
the id is retired and never reused. Pure numpy; no models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from avatarlab.face.boxes import iou

MAX_GAP = 15
"""Frames a person may go unseen and keep their id (0.6 s at 25 fps)."""

MAX_POINT_DISTANCE = 0.5
"""A match needs keypoints within this many body heights of the prediction (median) ..."""

MIN_IOU = 0.2
"""... or the predicted and found boxes overlapping at least this much."""

VELOCITY_KEEP = 0.5
"""Weight of the previous velocity in its running average (the rest: the latest step)."""

MAX_SPEED = 0.2
"""Fastest plausible motion, body heights per frame: a faster step is a bad pose, not speed."""

MAX_PREDICT = 5
"""Frames a lost track's motion is extrapolated at most (people stop, turn, and wait)."""

_UNMATCHED = 1e6


@dataclass
class _Track:
    id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1 pixels
    points: np.ndarray  # (K, 3) x, y, confidence
    last: int  # frame index last seen
    velocity: np.ndarray  # (2,) pixels per frame


@dataclass(frozen=True)
class Assignment:
    """The id given to one found person; ``gap``: frames it went unseen before this one (-1: new)."""

    id: int
    gap: int


class PersonTracker:
    """Ids for the people of successive frames; see the module doc."""

    def __init__(self, min_confidence: float = 0.5, max_gap: int = MAX_GAP) -> None:
        self.min_confidence = min_confidence
        self.max_gap = max_gap
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._index = -1

    @property
    def lost(self) -> bool:
        """Whether some id is waiting for its person (unseen in the last frame, not yet retired)."""
        return any(t.last < self._index for t in self._tracks)

    def update(
        self, index: int, boxes: list[np.ndarray], points: list[np.ndarray]
    ) -> tuple[list[Assignment], list[int]]:
        """Ids for frame ``index``'s people and the ids retired now.

        ``boxes[i]`` is ``(4,)`` pixels, ``points[i]`` ``(K, 3)`` x, y, confidence
        with the same K for everyone (missing points: confidence below
        ``min_confidence`` or NaN). Frames must come in increasing ``index``.
        """
        self._index = index
        cost = self._cost(index, boxes, points)
        rows, cols = linear_sum_assignment(cost) if cost.size else ([], [])
        matched = {
            int(c): int(r) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _UNMATCHED
        }
        out: list[Assignment] = []
        for j, (box, pts) in enumerate(zip(boxes, points, strict=True)):
            if j in matched:
                track = self._tracks[matched[j]]
                gap = index - track.last - 1
                self._move(track, index, box, pts)
            else:
                track = _Track(self._next_id, box.copy(), pts.copy(), index, np.zeros(2))
                self._next_id += 1
                self._tracks.append(track)
                gap = -1
            out.append(Assignment(track.id, gap))
        retired = [t.id for t in self._tracks if index - t.last > self.max_gap]
        self._tracks = [t for t in self._tracks if index - t.last <= self.max_gap]
        return out, retired

    def _cost(self, index: int, boxes: list[np.ndarray], points: list[np.ndarray]) -> np.ndarray:
        """``(tracks, found)`` matching costs; ``_UNMATCHED`` where a pair is implausible."""
        cost = np.full((len(self._tracks), len(boxes)), _UNMATCHED)
        for i, track in enumerate(self._tracks):
            moved = track.velocity * min(index - track.last, MAX_PREDICT)
            for j, (found, pts) in enumerate(zip(boxes, points, strict=True)):
                step = self._steps(track.points, pts)
                height = max(_height(track.box), _height(found))
                for shift in (moved, np.zeros(2)):  # a bad velocity must not lose the person
                    overlap = iou(track.box + np.tile(shift, 2), found)
                    dist = (
                        float(np.median(np.linalg.norm(step - shift, axis=1))) / height
                        if len(step)
                        else np.inf
                    )
                    if dist < MAX_POINT_DISTANCE or overlap >= MIN_IOU:
                        cost[i, j] = min(cost[i, j], 1.0 - overlap + min(dist, 1.0))
        return cost

    def _steps(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """``(M, 2)`` pixel moves of the M keypoints confident in both ``old`` and ``new``."""
        c = self.min_confidence
        both = (old[:, 2] >= c) & (new[:, 2] >= c)
        both &= np.isfinite(old[:, 0]) & np.isfinite(new[:, 0])
        return new[both, :2] - old[both, :2]

    def _move(self, track: _Track, index: int, box: np.ndarray, pts: np.ndarray) -> None:
        step = self._steps(track.points, pts)
        if len(step):
            latest = np.median(step, axis=0) / (index - track.last)
            velocity = VELOCITY_KEEP * track.velocity + (1.0 - VELOCITY_KEEP) * latest
            limit = MAX_SPEED * max(_height(track.box), _height(box))
            track.velocity = velocity * min(1.0, limit / max(float(np.hypot(*velocity)), 1e-9))
        track.box, track.points, track.last = box.copy(), pts.copy(), index


def _height(box: np.ndarray) -> float:
    return max(float(box[3] - box[1]), 1.0)
