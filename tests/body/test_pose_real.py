"""The pose task on the shared images and clips: layouts, keypoints on the body, renders, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarlab.body import (
    COCO_COLOURS,
    COCO_LIMBS,
    EstimatorOptions,
    PersonSegmenter,
    PoseEstimator,
    read_openpose,
)
from avatarlab.body.align import limb_directions
from avatarlab.errors import MediaError
from avatarlab.face import FaceTracker
from avatarlab.media import iter_frames, probe, read_image
from avatarlab.media.files import write_image
from avatarlab.tasks.pose import PoseAlignOptions, PoseOptions, pose, pose_align

from .conftest import encode

IMAGES = ("full_body.png", "anime_girl.jpg")


def _near_mask(mask: np.ndarray, xy: np.ndarray, radius: int = 3) -> bool:
    """Whether the mask says "person" (> 0.5) within ``radius`` px of a point."""
    x, y = int(xy[0]), int(xy[1])
    h, w = mask.shape
    patch = mask[
        max(0, y - radius) : min(h, y + radius + 1), max(0, x - radius) : min(w, x + radius + 1)
    ]
    return bool(patch.size and patch.max() > 0.5)


@pytest.fixture(scope="module")
def image_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("pose_images")
    paths = [data_dir / "image" / n for n in IMAGES]
    return pose(paths, out, PoseOptions(hands=True, face=True)), out


@pytest.mark.parametrize("name", IMAGES)
def test_image_json_layout_and_keypoints_on_the_body(image_run, image, name: str) -> None:  # type: ignore[no-untyped-def]
    result, out = image_run
    stem = Path(name).stem
    path = out / "json" / f"{stem}_000000000000_keypoints.json"
    data = json.loads(path.read_text())
    assert data["version"] == 1.3 and len(data["people"]) == 1
    p = data["people"][0]
    assert p["person_id"] == [-1]
    assert len(p["pose_keypoints_2d"]) == 75 and len(p["face_keypoints_2d"]) == 210
    assert len(p["hand_left_keypoints_2d"]) == 63 and len(p["hand_right_keypoints_2d"]) == 63
    frame = image(name)
    h, w = frame.shape[:2]
    body = np.asarray(p["pose_keypoints_2d"]).reshape(25, 3)
    found = body[:, 2] > 0
    assert ((body[found, 0] < w) & (body[found, 1] < h)).all()
    with FaceTracker() as tracker:
        state = tracker.update(frame)
    assert state is not None
    x0, y0, x1, y1 = state.box
    assert found[0] and x0 <= body[0, 0] <= x1 and y0 <= body[0, 1] <= y1  # nose in the face box
    face = np.asarray(p["face_keypoints_2d"]).reshape(70, 3)
    assert (face[:, 2] > 0).all()
    for k in (15, 16):  # pose eyes within a few px of the face's pupils
        pupil = face[68 if k == 15 else 69, :2]
        assert np.linalg.norm(body[k, :2] - pupil) < 0.15 * (x1 - x0)
    with PersonSegmenter() as seg:
        mask = seg.mask(frame)
    for k in (4, 7, 11, 14):  # wrists and ankles, where found
        if found[k]:
            assert _near_mask(mask, body[k]), f"BODY_25 point {k} off the person mask"
    summary = json.loads((out / "summary.json").read_text())["inputs"]
    assert [s["empty_frames"] for s in summary] == [[], []]
    assert result.outputs and all(f.exists() for f in result.outputs)


def test_full_body_finds_wrists_and_a_hand(image_run) -> None:  # type: ignore[no-untyped-def]
    _, out = image_run
    person = read_openpose(
        out / "json" / "full_body_000000000000_keypoints.json", (800, 1200)
    ).people[0]
    assert (person.body[[2, 3, 4, 5, 6, 7, 8, 9, 12], 2] > 0).all()  # arms and hips
    assert (person.body[[11, 14], 2] == 0).all()  # the picture ends at the knees: no ankles
    hands = [
        h for h in (person.hand_left, person.hand_right) if h is not None and (h[:, 2] > 0).all()
    ]
    assert hands
    for hand in hands:
        wrists = person.body[[4, 7], :2]
        assert np.min(np.linalg.norm(wrists - hand[0, :2], axis=1)) < 60


def _limbs_checked(canvas: np.ndarray, body25: np.ndarray) -> int:
    """Pixel test: each limb's midpoint has its colour (x 0.6), where no joint or later limb covers it."""
    from avatarlab.body.layouts import BODY25_TO_COCO18

    coco = body25[list(BODY25_TO_COCO18)]
    ok = coco[:, 2] > 0
    joints = coco[ok, :2]
    checked = 0
    for i, (a, b) in enumerate(COCO_LIMBS):
        if not (ok[a] and ok[b]):
            continue
        mid = (coco[a, :2] + coco[b, :2]) / 2
        if np.min(np.linalg.norm(joints - mid, axis=1)) < 7:
            continue
        later = [(coco[c, :2], coco[d, :2]) for c, d in COCO_LIMBS[i + 1 :] if ok[c] and ok[d]]
        if any(_segment_distance(mid, p, q) < 7 for p, q in later):
            continue
        x, y = int(mid[0]), int(mid[1])
        assert canvas[y, x].tolist() == [int(c * 0.6) for c in COCO_COLOURS[i]], f"limb {i}"
        checked += 1
    return checked


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    d = b - a
    t = float(np.clip(np.dot(p - a, d) / max(float(np.dot(d, d)), 1e-9), 0, 1))
    return float(np.linalg.norm(p - (a + t * d)))


def test_skeleton_png_colours_at_limb_midpoints(image_run) -> None:  # type: ignore[no-untyped-def]
    _, out = image_run
    canvas = read_image(out / "skeleton" / "full_body_000000000000.png")
    assert canvas.shape == (1200, 800, 3)
    person = read_openpose(
        out / "json" / "full_body_000000000000_keypoints.json", (800, 1200)
    ).people[0]
    assert _limbs_checked(canvas, person.body) >= 8


def test_video_outputs_match_the_source(short_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = short_clip("dance_full_body.mp4", 6)
    result = pose([clip], tmp_path, PoseOptions(render_format="both", mask="video", smooth=True))
    info, src = probe(tmp_path / "skeleton" / "dance_full_body.mp4"), probe(clip)
    assert (info.width, info.height, info.fps, info.n_frames) == (720, 1080, src.fps, 6)
    assert probe(tmp_path / "masks" / "dance_full_body.mp4").n_frames == 6
    jsons = sorted((tmp_path / "json").glob("dance_full_body_*_keypoints.json"))
    assert [j.name for j in jsons][-1] == "dance_full_body_000000000005_keypoints.json"
    assert len(jsons) == 6 and result.inputs[0].empty_frames == []
    frame = next(iter_frames(clip))[0]
    body = read_openpose(jsons[0], (720, 1080)).people[0].body
    with PersonSegmenter() as seg:
        mask = seg.mask(frame)
    for k in (4, 7, 11, 14):  # the dancer's wrists and ankles are all in the picture
        assert body[k, 2] > 0 and _near_mask(mask, body[k], 6), f"BODY_25 point {k}"
    canvas = read_image(tmp_path / "skeleton" / "dance_full_body_000000000000.png")
    assert _limbs_checked(canvas, body) >= 8
    assert not list(tmp_path.glob(".pose-*"))  # the staging folder is gone


def test_hands_follow_the_wrists(short_clip) -> None:  # type: ignore[no-untyped-def]
    frames = [
        f for f, _ in zip(iter_frames(short_clip("hands_half_body.mp4", 5)), range(5), strict=False)
    ]
    with PoseEstimator(EstimatorOptions(hands=True)) as est:
        poses = [est.update(f, t) for f, t in frames]
    both = 0
    for fp in poses:
        p = fp.people[0]
        for hand, wrist in ((p.hand_left, 7), (p.hand_right, 4)):
            assert hand is not None
            if (hand[:, 2] > 0).all() and p.body[wrist, 2] > 0:
                assert np.linalg.norm(hand[0, :2] - p.body[wrist, :2]) < 50
        both += bool((p.hand_left[:, 2] > 0).all() and (p.hand_right[:, 2] > 0).all())
    assert both >= 4


def test_dwpose_format_and_empty_frames(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    person = cv2.resize(image("full_body.png"), (400, 600))
    black = np.zeros_like(person)
    clip = encode(tmp_path / "gap.mp4", [black, black, person, person])
    result = pose([clip], tmp_path / "out", PoseOptions(format="dwpose", render="none"))
    item = result.inputs[0]
    assert item.empty_frames == [0, 1] and item.frames == 4
    assert any("nobody found in 2 of 4 frame(s): 0-1" in n for n in item.notes)
    with np.load(tmp_path / "out" / "dwpose" / "gap.npz") as z:
        assert z["people"].tolist() == [0, 0, 1, 1]
        cand = z["candidate"]
        assert cand.shape == (4, 18, 2) and (cand[0] == -1).all()
        nose = cand[2, 0]
        assert 0.35 < nose[0] < 0.65 and 0.1 < nose[1] < 0.35  # normalised coordinates
    assert not (tmp_path / "out" / "json").exists()


def test_huge_image_reports_source_pixels(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    big = np.zeros((4000, 4000, 3), np.uint8)
    big[:, 667:3333] = cv2.resize(
        image("full_body.png"), (2666, 4000), interpolation=cv2.INTER_CUBIC
    )
    model_view = cv2.resize(big, (1280, 1280), interpolation=cv2.INTER_AREA)  # what the model reads
    with PoseEstimator(EstimatorOptions(static=True)) as est:
        big_body = est.update(big).people[0].body
        view = est.update(model_view).people[0].body
    ok = (big_body[:, 2] > 0) & (view[:, 2] > 0)
    assert ok.sum() >= 12 and (big_body[ok, :2] > 1500).any()  # source pixels, not model pixels
    np.testing.assert_allclose(big_body[ok, :2], view[ok, :2] * (4000 / 1280), atol=0.5)
    write_image(tmp_path / "empty.png", np.zeros((4000, 4000, 3), np.uint8))
    result = pose([tmp_path / "empty.png"], tmp_path / "o", PoseOptions(render="none"))
    notes = result.inputs[0].notes
    assert any("downscaled to 1280" in n for n in notes)
    assert any("nobody found in 1 of 1 frame(s): 0" in n for n in notes)
    data = json.loads((tmp_path / "o/json/empty_000000000000_keypoints.json").read_text())
    assert data == {"version": 1.3, "people": []}


def test_smoothing_steadies_a_still_person(image) -> None:  # type: ignore[no-untyped-def]
    still = cv2.resize(image("full_body.png"), (400, 600))
    rng = np.random.default_rng(0)
    frames = [
        np.clip(still + rng.normal(0, 6, still.shape), 0, 255).astype(np.uint8) for _ in range(10)
    ]

    def jitter(smooth: bool) -> float:
        with PoseEstimator(EstimatorOptions(smooth=smooth)) as est:
            bodies = np.stack([est.update(f, i / 25).people[0].body for i, f in enumerate(frames)])
        ok = (bodies[:, :19, 2] > 0).all(axis=0)
        accel = np.diff(bodies[:, :19][:, ok, :2], n=2, axis=0)
        return float(np.sqrt(np.mean(accel**2)))

    raw, smooth = jitter(False), jitter(True)
    assert smooth < 0.6 * raw, (raw, smooth)


def test_rotated_phone_video_is_upright(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    upright = cv2.resize(image("full_body.png"), (400, 600))
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # sensor-oriented, 600x400
    clip = encode(tmp_path / "phone.mp4", [stored] * 3, rotation_ccw=-90)
    assert probe(clip).rotation == 90 and (probe(clip).width, probe(clip).height) == (400, 600)
    result = pose([clip], tmp_path / "o", PoseOptions(render="none"))
    assert result.inputs[0].frame_size == (400, 600)
    body = (
        read_openpose(tmp_path / "o/json/phone_000000000001_keypoints.json", (400, 600))
        .people[0]
        .body
    )
    assert body[0, 1] < body[1, 1] < body[8, 1]  # nose above neck above hips: upright


def test_several_people_keep_their_ids(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one = cv2.resize(image("full_body.png"), (400, 600))
    frames = []
    shifts = (0, 10, 20, 30)
    for shift in shifts:
        canvas = np.full((600, 900, 3), 90, np.uint8)
        canvas[:, 20 + shift : 420 + shift] = one
        canvas[:, 470 - shift : 870 - shift] = one[:, ::-1]
        frames.append(canvas)
    with PoseEstimator(EstimatorOptions(max_people=2)) as est:
        poses = [est.update(f, i / 25) for i, f in enumerate(frames)]
    for fp in poses:
        assert [p.id for p in fp.people] == [0, 1]
    noses = np.array([[p.body[0, 0] for p in fp.people] for fp in poses])
    by_id = noses[:, np.argsort(noses[0])]
    assert (np.diff(by_id[:, 0]) > 0).all() and (
        np.diff(by_id[:, 1]) < 0
    ).all()  # each id follows its person


def test_tiny_person_is_found_through_the_face_detector(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    canvas = np.full((1080, 1920, 3), 120, np.uint8)
    canvas[700:1000, 900:1100] = cv2.resize(
        image("full_body.png"), (200, 300), interpolation=cv2.INTER_AREA
    )
    with PoseEstimator(EstimatorOptions(static=True)) as est:
        fp = est.update(canvas)
    assert len(fp.people) == 1
    nose = fp.people[0].body[0]
    assert 900 < nose[0] < 1100 and 700 < nose[1] < 800


def test_pose_align_keeps_reference_lengths_and_driving_angles(
    data_dir: Path, short_clip, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    clip = short_clip("dance_full_body.mp4", 4)
    ref_path = data_dir / "image" / "full_body.png"
    result = pose_align(ref_path, clip, tmp_path, PoseAlignOptions(smooth=False))
    assert result.frames == 4 and result.empty_frames == []
    info = probe(tmp_path / "dance_full_body_aligned.mp4")
    assert (info.width, info.height, info.n_frames) == (800, 1200, 4)
    pose([ref_path, clip], tmp_path / "raw", PoseOptions(render="none", hands=True, face=True))
    ref = (
        read_openpose(tmp_path / "raw/json/full_body_000000000000_keypoints.json", (800, 1200))
        .people[0]
        .body
    )
    for i in range(4):
        name = f"{i:012d}_keypoints.json"
        drv = (
            read_openpose(tmp_path / f"raw/json/dance_full_body_{name}", (720, 1080)).people[0].body
        )
        out = (
            read_openpose(tmp_path / f"json/dance_full_body_aligned_{name}", (800, 1200))
            .people[0]
            .body
        )
        d_out, d_drv = limb_directions(out), limb_directions(drv)
        ok = np.isfinite(d_out)
        assert ok.sum() >= 15
        diff = (d_out[ok] - d_drv[ok] + 180) % 360 - 180
        assert np.abs(diff).max() < 1.0  # driving joint angles kept (JSON rounding only)
        if i == result.align_frame:
            np.testing.assert_allclose(out[1, :2], ref[1, :2], atol=0.01)  # neck on the reference's
            assert abs(_len(out, 0, 1) / _len(ref, 0, 1) - 1) < 0.05
            assert abs(_len(out, 2, 5) / _len(ref, 2, 5) - 1) < 0.05  # shoulder width
            assert abs(_len(out, 17, 18) / _len(ref, 17, 18) - 1) < 0.05  # ear to ear
            pairs = (((2, 3), (5, 6)), ((3, 4), (6, 7)), ((9, 10), (12, 13)))
            measured = [
                pair
                for pair in pairs
                if all(ref[j, 2] > 0 and out[j, 2] > 0 for b in pair for j in b)
            ]
            assert len(measured) >= 2  # both arm segments (the reference ends at the knees)
            for pair in measured:
                ref_mean = np.mean([_len(ref, a, b) for a, b in pair])
                out_mean = np.mean([_len(out, a, b) for a, b in pair])
                assert abs(out_mean / ref_mean - 1) < 0.05, pair
    report = json.loads((tmp_path / "align.json").read_text())
    assert report["align_frame"] == 0 and "leg_lower" not in report["measured"]


def _len(body: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(body[a, :2] - body[b, :2]))


def test_an_unreadable_input_is_recorded_and_the_others_written(image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A batch goes on past a bad file (listed in ``failed`` and summary.json, exit 1 in the
    CLI); a killed run's staging folder is removed by the next run."""
    from typer.testing import CliRunner

    from avatarlab.cli import app

    write_image(tmp_path / "good.png", image("full_body.png"))
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    out = tmp_path / "o"
    (out / ".pose-k1lled00" / "json").mkdir(parents=True)  # a SIGKILLed run's staging
    result = pose([tmp_path / "good.png", tmp_path / "bad.png"], out, PoseOptions(render="none"))
    assert [i.path.name for i in result.inputs] == ["good.png"]
    assert [p.name for p, _ in result.failed] == ["bad.png"] and result.failed[0][1]
    summary = json.loads((out / "summary.json").read_text())
    assert [f["path"] for f in summary["failed"]] == [str(tmp_path / "bad.png")]
    assert (out / "json/good_000000000000_keypoints.json").is_file()
    assert not list(out.glob("json/bad_*")) and not list(out.glob(".pose-*"))
    run = CliRunner().invoke(
        app,
        [
            "pose",
            str(tmp_path / "good.png"),
            str(tmp_path / "bad.png"),
            "-o",
            str(out),
            "--render",
            "none",
        ],  # fmt: skip
    )
    assert run.exit_code == 1 and "bad.png: failed:" in run.output
    (tmp_path / "good.png").unlink()
    with pytest.raises(MediaError, match="no input could be posed"):
        pose([tmp_path / "bad.png"], tmp_path / "o2")
