"""``PersonTracker`` on synthetic people: ids across gaps, crossings and retirement."""

from __future__ import annotations

import numpy as np

from avatarlab.body.track import PersonTracker

_OFFSETS = np.random.default_rng(0).uniform([-40, -100], [40, 100], size=(25, 2))


def _person(cx: float, cy: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    """A 80x200 px body: its box and 25 keypoints around the centre."""
    pts = np.ones((25, 3), np.float32)
    pts[:, :2] = _OFFSETS + (cx, cy)
    return np.array([cx - 40, cy - 100, cx + 40, cy + 100], np.float32), pts


def _update(tracker: PersonTracker, index: int, xs: list[float]) -> list[tuple[int, int]]:
    """``(id, gap)`` of people at centres ``xs`` in frame ``index``."""
    people = [_person(x) for x in xs]
    assigned, _ = tracker.update(index, [b for b, _ in people], [p for _, p in people])
    return [(a.id, a.gap) for a in assigned]


def _frame(tracker: PersonTracker, index: int, xs: list[float]) -> list[int]:
    return [pid for pid, _ in _update(tracker, index, xs)]


def test_an_id_survives_a_gap_and_is_retired_after_max_gap() -> None:
    tracker = PersonTracker(max_gap=5)
    assert _frame(tracker, 0, [100, 500]) == [0, 1]
    for i in range(1, 5):  # person 1 unseen for 4 frames
        assert _frame(tracker, i, [100 + 2 * i]) == [0]
    assert tracker.lost
    assert _update(tracker, 5, [110, 505]) == [(0, 0), (1, 4)]
    for i in range(6, 13):
        _frame(tracker, i, [110])
    assert _frame(tracker, 13, [110, 505]) == [0, 2]  # too long gone: a new id, never 1 again


def test_ids_follow_people_who_cross_while_one_is_hidden() -> None:
    tracker = PersonTracker()
    ids = []
    for i in range(12):
        a, b = 100 + 40 * i, 540 - 40 * i
        xs = [a, b] if abs(a - b) > 170 else [b]  # b hides a for 4 frames as they pass
        ids.append(dict(zip(xs, _frame(tracker, i, xs), strict=True)))
    assert all(d[540 - 40 * i] == 1 for i, d in enumerate(ids))
    assert all(d[100 + 40 * i] == 0 for i, d in enumerate(ids) if len(d) == 2)
    assert sum(len(d) == 1 for d in ids) == 4
    assert ids[-1] == {100 + 40 * 11: 0, 540 - 40 * 11: 1}  # a came back on b's far side
