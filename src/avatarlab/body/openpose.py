"""Pose files in the formats the field's tools read: OpenPose JSON and the DWPose/MusePose dict.

OpenPose JSON (``doc/02_output.md`` of CMU-Perceptual-Computing-Lab/openpose,
``--write_json``): one file per frame, ``<name>_<frame:012d>_keypoints.json``,
``{"version": 1.3, "people": [...]}``, each person with ``person_id`` and
flat ``[x0, y0, c0, x1, ...]`` lists in source pixels: ``pose_keypoints_2d``
(75 numbers for BODY_25, 54 for COCO-18), ``face_keypoints_2d`` (210),
``hand_left_keypoints_2d`` and ``hand_right_keypoints_2d`` (63 each), and the
``*_3d`` lists, empty as OpenPose writes them without ``--3d``. A part that was
not asked for is an empty list (as OpenPose without ``--face``/``--hand``); a
missing point is ``0, 0, 0``. ``person_id`` is ``[-1]`` as OpenPose writes it
without tracking; with several people it holds our stable id.

DWPose layout (``pose`` dict of ``annotator/dwpose/__init__.py`` in
IDEA-Research/DWPose, read by MusePose's ``pose_align.py``): coordinates
divided by the frame width and height, missing points -1;
``bodies.candidate`` ``(P*18, 2)`` COCO-18 points of all people,
``bodies.subset`` ``(P, 18)`` the row of each point in ``candidate`` or -1,
``hands`` ``(2P, 21, 2)`` all left hands then all right hands, ``faces``
``(P, 68, 2)`` (the 68 iBUG points, no pupils).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from avatarlab._util import atomic_output
from avatarlab.body.estimate import FramePose, Person, missing
from avatarlab.body.layouts import (
    BODY25_TO_COCO18,
    NUM_BODY_25,
    NUM_COCO_18,
    NUM_FACE_70,
    NUM_HAND,
)
from avatarlab.errors import MediaError

OPENPOSE_VERSION = 1.3
BodyLayout = Literal["body25", "coco18"]

_3D_KEYS = (
    "pose_keypoints_3d",
    "face_keypoints_3d",
    "hand_left_keypoints_3d",
    "hand_right_keypoints_3d",
)


def openpose_filename(name: str, index: int) -> str:
    """OpenPose's per-frame file name: ``<name>_<index:012d>_keypoints.json``."""
    return f"{name}_{index:012d}_keypoints.json"


def _flat(points: np.ndarray | None) -> list[float]:
    """Flat x, y, c list with missing points as zeros; [] for a part not asked for."""
    if points is None:
        return []
    p = np.asarray(points, dtype=np.float64).copy()
    gone = ~np.isfinite(p[:, 0]) | ~np.isfinite(p[:, 1]) | (p[:, 2] <= 0)
    p[gone] = 0.0
    p[:, :2] = np.round(p[:, :2], 3)
    p[:, 2] = np.round(p[:, 2], 6)
    return [float(v) for v in p.ravel()]


def to_openpose(
    frame: FramePose, layout: BodyLayout = "body25", ids: bool = False
) -> dict[str, Any]:
    """OpenPose JSON dict of one frame; ``ids``: write our stable ids as ``person_id``."""
    people = []
    for person in frame.people:
        body = person.body if layout == "body25" else person.body[list(BODY25_TO_COCO18)]
        entry: dict[str, Any] = {
            "person_id": [person.id if ids else -1],
            "pose_keypoints_2d": _flat(body),
            "face_keypoints_2d": _flat(person.face),
            "hand_left_keypoints_2d": _flat(person.hand_left),
            "hand_right_keypoints_2d": _flat(person.hand_right),
        }
        entry.update({key: [] for key in _3D_KEYS})
        people.append(entry)
    return {"version": OPENPOSE_VERSION, "people": people}


def write_openpose(
    path: str | os.PathLike[str], frame: FramePose, layout: BodyLayout = "body25", ids: bool = False
) -> Path:
    """Write one frame's OpenPose JSON atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(to_openpose(frame, layout, ids), separators=(",", ":")))
    return Path(path)


def _points(flat: Sequence[float], n: int) -> np.ndarray:
    arr = np.asarray(flat, dtype=np.float32).reshape(n, 3)
    gone = arr[:, 2] <= 0
    arr[gone, :2] = np.nan
    arr[gone, 2] = 0.0
    return arr


def _part(flat: Sequence[float], n: int) -> np.ndarray | None:
    """A hand or face from its flat list; None when the part was not asked for ([])."""
    if not flat:
        return None
    if len(flat) != 3 * n:
        raise MediaError(f"a hand or face list has {len(flat)} numbers: expected {3 * n}")
    return _points(flat, n)


def from_openpose(
    data: dict[str, Any], frame_size: tuple[int, int], index: int = 0, t: float = 0.0
) -> FramePose:
    """Read an OpenPose JSON dict (BODY_25 or COCO-18 bodies) back into a ``FramePose``."""
    people = []
    for k, entry in enumerate(data.get("people", [])):
        flat = entry.get("pose_keypoints_2d", [])
        if len(flat) == 3 * NUM_COCO_18:
            body = missing(NUM_BODY_25)
            body[list(BODY25_TO_COCO18)] = _points(flat, NUM_COCO_18)
        elif len(flat) == 3 * NUM_BODY_25:
            body = _points(flat, NUM_BODY_25) if flat else missing(NUM_BODY_25)
        else:
            raise MediaError(
                f"pose_keypoints_2d has {len(flat)} numbers: expected 75 (BODY_25) or 54 (COCO-18)"
            )
        pid = entry.get("person_id", [-1])
        people.append(
            Person(
                id=k if not pid or pid[0] < 0 else int(pid[0]),
                body=body,
                hand_left=_part(entry.get("hand_left_keypoints_2d", []), NUM_HAND),
                hand_right=_part(entry.get("hand_right_keypoints_2d", []), NUM_HAND),
                face=_part(entry.get("face_keypoints_2d", []), NUM_FACE_70),
            )
        )
    return FramePose(index, t, frame_size, people)


def read_openpose(path: str | os.PathLike[str], frame_size: tuple[int, int]) -> FramePose:
    """Read an OpenPose ``*_keypoints.json`` file; ``frame_size`` is the source (W, H)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MediaError(f"cannot read OpenPose JSON {p}: {err}") from None
    return from_openpose(data, frame_size)


def _normalised(points: np.ndarray | None, n: int, size: tuple[int, int]) -> np.ndarray:
    """``(n, 2)`` float32 points divided by (W, H), -1 where missing."""
    if points is None:
        return np.full((n, 2), -1.0, dtype=np.float32)
    xy = points[:, :2] / np.asarray(size, dtype=np.float32)
    gone = ~np.isfinite(xy).all(axis=1) | (points[:, 2] <= 0)
    xy[gone] = -1.0
    return xy.astype(np.float32)


def to_dwpose(frame: FramePose) -> dict[str, Any]:
    """DWPose ``pose`` dict of one frame (numpy arrays, layout in the module doc)."""
    size = frame.frame_size
    n = len(frame.people)
    candidate = np.full((n * NUM_COCO_18, 2), -1.0, dtype=np.float32)
    subset = np.full((n, NUM_COCO_18), -1.0, dtype=np.float32)
    for k, person in enumerate(frame.people):
        coco = person.body[list(BODY25_TO_COCO18)]
        xy = _normalised(coco, NUM_COCO_18, size)
        candidate[k * NUM_COCO_18 : (k + 1) * NUM_COCO_18] = xy
        found = xy[:, 0] >= 0
        subset[k, found] = (k * NUM_COCO_18 + np.flatnonzero(found)).astype(np.float32)
    left = [_normalised(p.hand_left, NUM_HAND, size) for p in frame.people]
    right = [_normalised(p.hand_right, NUM_HAND, size) for p in frame.people]
    hands = np.stack(left + right) if n else np.zeros((0, NUM_HAND, 2), dtype=np.float32)
    faces = [_normalised(None if p.face is None else p.face[:68], 68, size) for p in frame.people]
    return {
        "bodies": {"candidate": candidate, "subset": subset},
        "hands": hands,
        "faces": np.stack(faces) if n else np.zeros((0, 68, 2), dtype=np.float32),
    }


def write_dwpose(
    npz_path: str | os.PathLike[str], json_path: str | os.PathLike[str], frames: Sequence[FramePose]
) -> list[Path]:
    """Write a sequence in the DWPose layout as ``.npz`` (padded arrays) and ``.json`` (per-frame dicts).

    The ``.npz`` holds ``candidate (N, P*18, 2)``, ``subset (N, P, 18)``,
    ``hands (N, 2P, 21, 2)``, ``faces (N, P, 68, 2)`` padded with -1 to the
    most people ``P`` of any frame (``people (N,)`` says how many are real),
    plus ``timestamps (N,)`` seconds and ``frame_size`` (W, H). The JSON is a
    list of the per-frame dicts, as MusePose keeps them.
    """
    dicts = [to_dwpose(f) for f in frames]
    most = max((len(f.people) for f in frames), default=0)
    count = len(frames)
    candidate = np.full((count, most * NUM_COCO_18, 2), -1.0, dtype=np.float32)
    subset = np.full((count, most, NUM_COCO_18), -1.0, dtype=np.float32)
    hands = np.full((count, 2 * most, NUM_HAND, 2), -1.0, dtype=np.float32)
    faces = np.full((count, most, 68, 2), -1.0, dtype=np.float32)
    for i, (frame, d) in enumerate(zip(frames, dicts, strict=True)):
        n = len(frame.people)
        candidate[i, : n * NUM_COCO_18] = d["bodies"]["candidate"]
        subset[i, :n] = d["bodies"]["subset"]
        hands[i, :n] = d["hands"][:n]
        hands[i, most : most + n] = d["hands"][n:]
        faces[i, :n] = d["faces"]
    size = frames[0].frame_size if frames else (0, 0)
    with atomic_output(npz_path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            candidate=candidate,
            subset=subset,
            hands=hands,
            faces=faces,
            people=np.array([len(f.people) for f in frames], dtype=np.int32),
            timestamps=np.array([f.t for f in frames], dtype=np.float64),
            frame_size=np.array(size, dtype=np.int32),
        )
    payload = [_jsonable(d) for d in dicts]
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(payload, separators=(",", ":")))
    return [Path(npz_path), Path(json_path)]


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    def rows(a: np.ndarray) -> Any:
        return np.round(a.astype(np.float64), 6).tolist()

    return {
        "bodies": {
            "candidate": rows(d["bodies"]["candidate"]),
            "subset": rows(d["bodies"]["subset"]),
        },
        "hands": rows(d["hands"]),
        "faces": rows(d["faces"]),
    }
