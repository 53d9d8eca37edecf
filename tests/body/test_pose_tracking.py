"""Several people with stable ids on real frames: a person missed for frames, people crossing.

The clips are built from the shared ``full_body.png`` (a girl, head to knees): the
picture and its mirror image side by side on a grey canvas, moving, one blanked
for a few frames, or walking past each other with one hiding the other.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from avatarlab.body import EstimatorOptions, FramePose, PoseEstimator, read_openpose
from avatarlab.tasks.pose import PoseOptions, pose

from .conftest import encode

W, H = 960, 480
PERSON = (300, 450)  # width, height in the canvas


def _scene(person: np.ndarray, xs: list[int | None]) -> np.ndarray:
    """The canvas with ``person`` (even index) or its mirror (odd) at left edges ``xs``;
    later ones are drawn over earlier ones, ``None`` is absent."""
    canvas = np.full((H, W, 3), 90, np.uint8)
    for k, x in enumerate(xs):
        if x is None:
            continue
        img = person if k % 2 == 0 else person[:, ::-1]
        x0, x1 = max(0, x), min(W, x + PERSON[0])
        canvas[15 : 15 + PERSON[1], x0:x1] = img[:, x0 - x : x1 - x]
    return canvas


def _run(frames: list[np.ndarray]) -> list[FramePose]:
    with PoseEstimator(EstimatorOptions(max_people=2, smooth=True)) as est:
        return [est.update(f, i / 25) for i, f in enumerate(frames)]


def _ids_by_side(fp: FramePose) -> list[int]:
    """Ids left to right (by the nose)."""
    return [p.id for p in sorted(fp.people, key=lambda p: float(p.body[0, 0]))]


def test_an_id_survives_frames_where_its_person_is_missing(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the pose task: the right person is blanked in frames 5-9 of a video."""
    person = cv2.resize(image("full_body.png"), PERSON, interpolation=cv2.INTER_AREA)
    gap = range(5, 10)
    frames = [_scene(person, [40 + 3 * i, None if i in gap else 600 - 3 * i]) for i in range(14)]
    clip = encode(tmp_path / "gap.mp4", frames)
    options = PoseOptions(max_people=2, smooth=True, render="none")
    result = pose([clip], tmp_path / "out", options).inputs[0]
    assert result.person_ids == [0, 1] and result.empty_frames == []
    poses = [
        read_openpose(tmp_path / f"out/json/gap_{i:012d}_keypoints.json", (W, H))
        for i in range(len(frames))
    ]
    for i, fp in enumerate(poses):
        if i in gap:
            assert _ids_by_side(fp) == [0], i
        elif i != gap.stop:  # the returning person may take a frame to be found again
            assert _ids_by_side(fp) == [0, 1], i
    right = poses[-1].people[1].body[0, 0]  # id 1 is the person on the right, back in place
    assert 600 - 3 * 13 < right < 600 - 3 * 13 + PERSON[0]


def test_ids_follow_people_who_walk_past_each_other(image) -> None:  # type: ignore[no-untyped-def]
    person = cv2.resize(image("full_body.png"), PERSON, interpolation=cv2.INTER_AREA)
    n, step = 20, 33
    # a walks left to right, b right to left and hides a while they pass
    xs = [(20 + step * i, 647 - step * i) for i in range(n)]
    poses = _run([_scene(person, [a, b]) for a, b in xs])
    a_id, b_id = _ids_by_side(poses[0])
    hidden = 0
    for fp, (a, b) in zip(poses, xs, strict=True):
        by_id = {p.id: float(p.body[0, 0]) for p in fp.people}
        assert set(by_id) <= {a_id, b_id}
        assert abs(by_id[b_id] - (b + PERSON[0] / 2)) < PERSON[0] / 2
        if a_id in by_id:
            assert abs(by_id[a_id] - (a + PERSON[0] / 2)) < PERSON[0] / 2
        hidden += a_id not in by_id
    assert 0 < hidden < 8  # a was hidden for a while and came back with its id
    assert _ids_by_side(poses[-1]) == [b_id, a_id]  # the order swapped, the ids did not
