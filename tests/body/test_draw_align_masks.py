"""Skeleton colours, pose alignment and background replacement on synthetic inputs."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.body import (
    COCO_COLOURS,
    COCO_LIMBS,
    FramePose,
    NoPersonError,
    Person,
    align_person,
    align_sequence,
    alignment_scales,
    draw_people,
    overlay,
    parse_background,
    replace_background,
)
from avatarlab.body.align import _CHAIN, limb_directions
from avatarlab.body.layouts import BODY25_TO_COCO18, HAND_EDGES, hsv_edge_colour
from avatarlab.errors import OptionError
from avatarlab.tasks.pose import PoseAlignOptions, PoseOptions

# A frontal BODY_25 skeleton (pixels), generous spacing so limbs do not overlap.
SKELETON = {
    0: (300, 120), 1: (300, 220), 2: (220, 225), 3: (180, 330), 4: (160, 440),
    5: (380, 225), 6: (420, 330), 7: (440, 440), 8: (300, 460), 9: (250, 460),
    10: (245, 600), 11: (240, 740), 12: (350, 460), 13: (355, 600), 14: (360, 740),
    15: (280, 100), 16: (320, 100), 17: (255, 110), 18: (345, 110),
    19: (380, 760), 21: (355, 755), 22: (220, 760), 24: (245, 755),
}  # fmt: skip


def skeleton(points: dict[int, tuple[float, float]] = SKELETON) -> np.ndarray:
    body = np.full((25, 3), np.nan, dtype=np.float32)
    body[:, 2] = 0
    for k, (x, y) in points.items():
        body[k] = (x, y, 0.9)
    return body


def test_limb_midpoints_have_the_convention_colours() -> None:
    canvas = draw_people([Person(0, skeleton())], (600, 800), hands=False, face=False)
    coco = skeleton()[list(BODY25_TO_COCO18)]
    checked = 0
    for i, (a, b) in enumerate(COCO_LIMBS):
        mid = (coco[a, :2] + coco[b, :2]) / 2
        if min(np.linalg.norm(mid - coco[a, :2]), np.linalg.norm(mid - coco[b, :2])) < 8:
            continue  # a joint circle covers the midpoint of very short limbs
        x, y = int(mid[0]), int(mid[1])
        expected = [int(c * 0.6) for c in COCO_COLOURS[i]]
        assert canvas[y, x].tolist() == expected, f"limb {i} {a}-{b}"
        checked += 1
    assert checked >= 15
    for j in range(18):  # joints in full colour
        x, y = (int(v) for v in coco[j, :2])
        assert canvas[y, x].tolist() == list(COCO_COLOURS[j]), f"joint {j}"
    assert canvas[700, 50].tolist() == [0, 0, 0]


def test_hand_and_face_drawing_colours() -> None:
    hand = np.zeros((21, 3), np.float32)
    hand[:, 2] = 1
    for k in range(21):  # a fan of fingers, long enough that bone midpoints are clear
        finger, joint = (k - 1) // 4, (k - 1) % 4 + 1
        hand[k, :2] = (100, 400) if k == 0 else (20 + 40 * finger, 400 - 60 * joint)
    face = np.full((70, 3), np.nan, np.float32)
    face[:, 2] = 0
    face[0] = (500, 50, 1)
    canvas = draw_people([Person(0, skeleton({}), hand, None, face)], (600, 500))
    assert canvas[50, 500].tolist() == [255, 255, 255]
    assert canvas[400, 100].tolist() == [0, 0, 255]  # hand joints are blue
    for i, (a, b) in enumerate(HAND_EDGES):
        mid = (hand[a, :2] + hand[b, :2]) / 2
        if min(np.linalg.norm(mid - hand[a, :2]), np.linalg.norm(mid - hand[b, :2])) < 7:
            continue
        assert canvas[int(mid[1]), int(mid[0])].tolist() == list(hsv_edge_colour(i)), f"bone {i}"


def test_overlay_keeps_skeleton_colours() -> None:
    frame = np.full((800, 600, 3), 200, np.uint8)
    sk = draw_people([Person(0, skeleton())], (600, 800))
    out = overlay(frame, sk)
    drawn = sk.any(axis=2)
    assert (out[drawn] == sk[drawn]).all() and (out[~drawn] == 100).all()


def _lengths(body: np.ndarray) -> dict[tuple[int, int], float]:
    return {
        (c, p): float(np.linalg.norm(body[c, :2] - body[p, :2]))
        for c, p, _ in _CHAIN
        if body[c, 2] > 0 and body[p, 2] > 0
    }


def test_alignment_takes_reference_lengths_and_keeps_driving_angles() -> None:
    ref = skeleton()
    drv_pts = {
        k: (0.7 * x + 40, 0.6 * y + 90) for k, (x, y) in SKELETON.items()
    }  # other proportions
    drv_pts[4] = (120, 300)  # an arm raised differently
    drv = skeleton(drv_pts)
    scales = alignment_scales(Person(0, ref), Person(0, drv))
    out = align_person(Person(0, drv), scales).body
    np.testing.assert_allclose(out[1, :2], ref[1, :2], atol=1e-4)  # neck on the reference's
    ref_len, out_len = _lengths(ref), _lengths(out)
    for bone in [(0, 1), (2, 1), (5, 1), (3, 2), (6, 5), (10, 9), (13, 12), (11, 10), (14, 13)]:
        assert out_len[bone] == pytest.approx(ref_len[bone], rel=0.05), bone
    np.testing.assert_allclose(limb_directions(out), limb_directions(drv), atol=1e-3)
    # later frames keep the scales: angles stay the driving ones, lengths follow the driving ratios
    moved = drv.copy()
    moved[3:5, :2] += (30.0, -40.0)
    later = align_person(Person(0, moved), scales).body
    np.testing.assert_allclose(limb_directions(later), limb_directions(moved), atol=1e-3)


def test_alignment_drops_children_of_missing_parents_and_fills_scales() -> None:
    drv = skeleton()
    drv[3] = (np.nan, np.nan, 0)  # right elbow missing
    ref_pts = dict(SKELETON)
    for k in (11, 14, 19, 21, 22, 24):  # reference cut at the knees
        ref_pts.pop(k)
    scales = alignment_scales(Person(0, skeleton(ref_pts)), Person(0, drv))
    assert "leg_lower" not in scales.measured
    measured = [scales.scales[k] for k in scales.measured]
    assert scales.scales["leg_lower"] == pytest.approx(np.mean(measured))
    out = align_person(Person(0, drv), scales).body
    assert out[4, 2] == 0 and np.isnan(out[4, 0])  # wrist below the missing elbow


def test_align_sequence_uses_first_usable_frame_and_keeps_empty_frames() -> None:
    ref = FramePose(0, 0, (600, 800), [Person(0, skeleton())])
    frames = [
        FramePose(0, 0, (500, 500), []),
        FramePose(1, 0.04, (500, 500), [Person(0, skeleton())]),
    ]
    scales, out, used = align_sequence(ref, frames)
    assert used == 1 and out[0].empty and out[1].frame_size == (600, 800)
    with pytest.raises(NoPersonError, match="no driving frame"):
        align_sequence(ref, frames[:1])


def test_replace_background_colour_image_blur() -> None:
    frame = np.full((40, 60, 3), 200, np.uint8)
    frame[:, :30] = (10, 20, 30)
    mask = np.zeros((40, 60), np.float32)
    mask[:, :20] = 1.0
    mask[:, 20:25] = 0.5
    out = replace_background(frame, mask, (0, 255, 0))
    assert out[5, 5].tolist() == [10, 20, 30] and out[5, 50].tolist() == [0, 255, 0]
    assert out[5, 22].tolist() == [5, 138, 15]  # half and half, rounded
    bg = np.zeros((10, 10, 3), np.uint8)
    bg[..., 2] = 255
    assert replace_background(frame, mask, bg)[5, 50].tolist() == [0, 0, 255]
    blurred = replace_background(frame, mask, "blur")
    assert blurred[5, 5].tolist() == [10, 20, 30] and 10 < blurred[5, 31, 0] < 200
    u8 = replace_background(frame, (mask * 255).astype(np.uint8), (0, 0, 0))
    assert u8[5, 50].tolist() == [0, 0, 0] and u8[5, 5].tolist() == [10, 20, 30]
    with pytest.raises(OptionError, match="does not match"):
        replace_background(frame, mask[:10], "blur")


def test_parse_background(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert parse_background("blur") == "blur"
    assert parse_background("#00ff80") == (0, 255, 128)
    assert parse_background("1, 2, 3") == (1, 2, 3)
    assert parse_background("white") == (255, 255, 255)
    with pytest.raises(OptionError, match="not blur, a colour"):
        parse_background("plaid")


def test_options_validate() -> None:
    assert PoseOptions().format == "openpose"
    for bad in (
        {"format": "mmpose"},
        {"render": "3d"},
        {"min_confidence": 1.5},
        {"max_people": 0},
        {"mask": "alpha"},
        {"crf": 60},
    ):
        with pytest.raises(OptionError):
            PoseOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(OptionError):
        PoseAlignOptions(align_frame=-1)
