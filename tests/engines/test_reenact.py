"""The reenact engine: motion transfer maths, warping, the task, bad input, real clips."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from avatarlab.engines.reenact import FaceReenactOptions, MotionDriver, ReenactOptions
from avatarlab.engines.reenact import scores as S
from avatarlab.engines.reenact.transfer import (
    FaceGeometry,
    MotionSignal,
    angles_to_rotation,
    clamp_rotation,
    region_weights,
    target_mesh,
)
from avatarlab.errors import MediaError, NoFaceError, OptionError
from avatarlab.face.pose import HeadPose, rotation_to_angles


# -- options -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        {"region": "nose"},
        {"multiplier": 4.0},
        {"smoothing": 2.0},
        {"loop": "pingpong"},
        {"crf": 60},
        {"audio": "/no/such.wav"},
        {"lips_still": True, "lips_open": 1.0},
        {"eyes_open": 2.0},
    ],
)
def test_bad_options_raise_option_error(bad: dict) -> None:
    with pytest.raises(OptionError):
        ReenactOptions(**bad)


def test_engine_options_checked() -> None:
    with pytest.raises(OptionError, match="max_angle"):
        FaceReenactOptions(max_angle=80)


def test_registered_as_a_motion_engine() -> None:
    from avatarlab.engines import ENGINES, engine_options, list_engines

    assert "reenact" in list_engines()
    assert engine_options("reenact") is FaceReenactOptions
    assert ENGINES.get("reenact").drives == "motion"


# -- transfer maths ------------------------------------------------------------------
def test_angles_round_trip_and_clamp() -> None:
    pose = HeadPose(yaw=20.0, pitch=-12.0, roll=7.0)
    back = rotation_to_angles(angles_to_rotation(pose))
    assert np.allclose(back.as_array(), pose.as_array(), atol=1e-6)
    rot, clamped = clamp_rotation(angles_to_rotation(HeadPose(50.0, 5.0, -3.0)), 30.0)
    got = rotation_to_angles(rot)
    assert clamped and abs(got.yaw - 30.0) < 1e-6 and abs(got.pitch - 5.0) < 1e-6
    assert not clamp_rotation(angles_to_rotation(pose), 30.0)[1]


def _posed(canon: np.ndarray, pose: HeadPose, scale: float, shift: np.ndarray) -> np.ndarray:
    return scale * canon @ angles_to_rotation(pose).T + shift


def test_self_reenactment_target_is_the_driving_mesh(portrait_mesh: np.ndarray) -> None:
    """Relative transfer with source = driving frame 0 gives back each driving mesh."""
    base = FaceGeometry.from_mesh(portrait_mesh)
    canon = base.canon.copy()
    frames = []
    for k in range(4):
        c = canon.copy()
        c[14, 1] += 0.3 * k  # lower lip down
        c[159, 1] += 0.1 * k  # lid down
        mesh = _posed(
            c, HeadPose(5.0 * k, -2.0 * k, 1.0 * k), 40.0 + k, np.array([200.0 + 3 * k, 210, 0])
        )
        frames.append(FaceGeometry.from_mesh(mesh))
    signal = MotionSignal(ReenactOptions(), 30.0, frames[0])
    for k, face in enumerate(frames):
        target = target_mesh(frames[0], signal.update(face, k / 25), ReenactOptions())
        assert np.abs(target[:, :2] - face.mesh[:, :2]).max() < 1e-6


def test_a_driver_starting_mid_word_opens_and_closes_a_closed_mouth() -> None:
    """The driving clip's first frame has its lips 1.3 cm apart, then it shuts and opens.
    Relative to that open frame, shutting would push the source's lips through each other
    (torn lips); with the reference mouth closed to the source's opening, the output opens
    with the driver, shuts when it shuts, and its inner lips never cross."""
    from avatarlab.engines.reenact.transfer import mouth_reference, part_lips
    from avatarlab.engines.warp import topology as tp
    from avatarlab.engines.warp.rig import FaceRig, Pose, lip_gaps
    from avatarlab.face.canonical import CANONICAL_FACE_3D

    closed = _posed(CANONICAL_FACE_3D, HeadPose(0, 0, 0), 40.0, np.array([200.0, 210, 0]))
    source = FaceGeometry.from_mesh(closed)  # the canonical face: lips together
    rig = FaceRig(source.canon[:468])

    def driving(jaw: float) -> FaceGeometry:
        c = source.canon.copy()
        c[:468] = rig.deform(Pose(jaw_open=jaw, lip_closed=0.0))
        return FaceGeometry.from_mesh(_posed(c, HeadPose(0, 0, 0), 40.0, np.array([200.0, 210, 0])))

    frames = [driving(j) for j in (0.8, 0.0, 0.4, 0.8)]
    gaps = [float(lip_gaps(f.canon)[4, 1]) for f in frames]
    assert gaps[0] - gaps[1] > 1.2
    signal = MotionSignal(ReenactOptions(), 30.0, source)
    got = []
    for k, face in enumerate(frames):
        target = target_mesh(source, signal.update(face, k / 25), ReenactOptions())
        canon = FaceGeometry.from_mesh(target).canon
        assert lip_gaps(canon)[:, 1].min() > -5e-3  # never through each other (refit: 0.05 mm)
        got.append(float(lip_gaps(canon)[4, 1]))
    # The reference is the driver closed to the source's opening (0.78 cm, the canonical
    # face's), so the output parts its lips as the driver does: open at frame 0, shut at 1.
    assert float(lip_gaps(source.canon)[4, 1]) < gaps[0] - 0.5
    assert got == pytest.approx(gaps, abs=0.05)
    # The closed reference matches the source's gap at every pair (no slots at the corners).
    closed_ref = mouth_reference(frames[0].canon, source.canon)
    assert lip_gaps(closed_ref)[:, 1] == pytest.approx(lip_gaps(source.canon)[:, 1], abs=1e-9)
    # Self-reenactment keeps its reference; crossed lips are moved until they meet, in the
    # canonical mesh and in the image along the face's (here rolled) down axis.
    assert mouth_reference(frames[1].canon, frames[1].canon) is frames[1].canon
    down = np.array([np.sin(0.3), np.cos(0.3)])
    pixels = source.canon[:, :2].copy()
    pixels[list(tp.MOUTH_LOWER)] -= 0.4 * down
    met = part_lips(pixels, down)
    gaps = (met[list(tp.MOUTH_LOWER)] - met[list(tp.MOUTH_UPPER)]) @ down
    assert gaps.min() > -1e-9 and np.allclose(
        met[list(tp.MOUTH_INNER_CORNERS)], pixels[list(tp.MOUTH_INNER_CORNERS)]
    )
    crossed = source.canon.copy()
    crossed[14, 1] -= 1.0  # the lower lip 0.22 cm above the upper
    assert lip_gaps(part_lips(crossed))[:, 1].min() == pytest.approx(0.0, abs=1e-9)


def test_regions_limit_what_moves(portrait_mesh: np.ndarray) -> None:
    source = FaceGeometry.from_mesh(portrait_mesh)
    c = source.canon.copy()
    c[14, 1] += 0.5  # mouth opens
    c[159, 1] += 0.2  # lid lowers
    driving = FaceGeometry.from_mesh(
        _posed(c, HeadPose(15.0, 0.0, 0.0), 40.0, np.array([200.0, 210, 0]))
    )
    start = FaceGeometry.from_mesh(
        _posed(source.canon, HeadPose(0.0, 0.0, 0.0), 40.0, np.array([200.0, 210, 0]))
    )
    moves = {}
    for region in ("all", "expression", "pose", "lips", "eyes"):
        opts = ReenactOptions(region=region)
        signal = MotionSignal(opts, 30.0, source)
        signal.update(start, 0.0)
        target = target_mesh(source, signal.update(driving, 0.04), opts)
        moves[region] = np.abs(target[:, :2] - source.mesh[:, :2])
    nose = 1
    assert moves["pose"][nose].max() > 5 and moves["expression"][nose].max() < 0.5
    assert moves["lips"][14].max() > 5 and moves["lips"][159].max() < 0.5
    assert moves["eyes"][159].max() > 2 and moves["eyes"][14].max() < 0.5
    assert region_weights("lips")[10] == 0.0 and region_weights("eyes")[152] < 1e-9


def test_lost_face_holds_last_motion_and_notes_it(portrait_mesh: np.ndarray) -> None:
    source = FaceGeometry.from_mesh(portrait_mesh)
    c = source.canon.copy()
    c[14, 1] += 0.4
    moved = FaceGeometry.from_mesh(source.frame.to_pixels(c))
    signal = MotionSignal(ReenactOptions(), 30.0, source)
    assert np.abs(signal.update(None, 0.0).delta).max() == 0.0  # before any face: still
    signal.update(source, 0.04)
    last = signal.update(moved, 0.08)
    held = signal.update(None, 0.12)
    assert held is last and abs(held.delta[14, 1] - 0.4) < 1e-6
    assert signal.notes()[0].startswith("no face in 2 frames") and "0, 3" in signal.notes()[0]


def test_scores_on_known_values() -> None:
    p = np.zeros((2, 68, 2))
    p[:, 36:42] = [0.0, 0.0]
    p[:, 42:48] = [10.0, 0.0]
    assert abs(S.pearson(np.arange(5.0), 2 * np.arange(5.0) + 1) - 1.0) < 1e-12
    open_ = p.copy()
    open_[:, [65, 66, 67], 1] = 3.0
    assert abs(S.mouth_opening(open_)[0] - 0.3) < 1e-9


# -- rendering -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def portrait(data_dir: Path) -> np.ndarray:
    from avatarlab.media import read_image

    return read_image(data_dir / "video" / "hdtf_aoc_8s.mp4")


@pytest.fixture(scope="module")
def portrait_mesh(portrait: np.ndarray) -> np.ndarray:
    from avatarlab.face import face_mesh

    mesh = face_mesh(portrait)
    assert mesh is not None
    return mesh


@pytest.fixture(scope="module")
def driving_frames(data_dir: Path) -> list[np.ndarray]:
    from avatarlab.media import iter_frames

    clip = data_dir / "video" / "expressions_silent.mp4"
    return [f for f, _ in itertools.islice(iter_frames(clip), 0, 40, 2)]


def _layout_and_target(frames: list[np.ndarray], k: int):
    """The layout of ``frames[0]`` and the self-reenactment target of ``frames[k]``."""
    from avatarlab.engines.reenact import render
    from avatarlab.face import face_mesh

    source, driven = face_mesh(frames[0]), face_mesh(frames[k])
    assert source is not None and driven is not None
    g = FaceGeometry.from_mesh(source)
    layout = render.SourceLayout.build(g.mesh, g.canon, g.frame, 256)
    return layout, driven.astype(np.float64)


def test_compiled_rasteriser_matches_the_warp_engines_on_a_real_frame(driving_frames) -> None:
    """The numba kernel gives the NumPy rasteriser's map (warp.field) to float32 precision."""
    from avatarlab.engines.reenact import render
    from avatarlab.engines.warp import field as fld

    layout, target = _layout_and_target(driving_frames, 10)
    src = layout.vertices
    affine = render.similarity_2d(src[render.RIGID_POINTS], target[render.RIGID_POINTS, :2])
    ring = src[render.RING_START : render.OPENING_START] @ affine[:, :2].T + affine[:, 2]
    dst = np.vstack([target[:, :2], ring, target[list(render.tp.EYE_OPENING), :2]])
    mouth, surface, band = render.reenact_triangles()
    tris = np.vstack([mouth, layout.eyes, surface, band])
    region = fld.Region.around(dst[render.RING_START :], driving_frames[0].shape)
    expected = fld.backward_map(src, dst, tris, region, 1.0)
    got = np.full_like(expected, np.nan)
    render.rasterise(got, src, dst, tris, render.Grid.over(region, 1.0))
    inside = np.isfinite(got[..., 0])
    assert inside.mean() > 0.5
    assert np.abs(got[inside] - expected[inside]).max() < 1e-2


def test_head_map_is_the_faded_similarity(driving_frames) -> None:
    """Inside the ring's ellipse the map is the inverse similarity; past HEAD_REACH, identity."""
    from avatarlab.engines.reenact import render
    from avatarlab.engines.warp import field as fld

    layout, _ = _layout_and_target(driving_frames, 0)
    affine = np.array([[0.99, -0.05, 6.0], [0.05, 0.99, -4.0]])
    grid = render.Grid.over(fld.Region(0, 0, 1200, 1200), 6.0)
    got = render.head_map(layout, affine, grid)
    px, py = grid.pixels()
    x, y = np.meshgrid(px, py)
    inv = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    q = np.stack(
        [inv[0, 0] * x + inv[0, 1] * y + inv[0, 2], inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]], -1
    )
    r = np.hypot(
        (q[..., 0] - layout.centre[0]) / layout.axes[0],
        (q[..., 1] - layout.centre[1]) / layout.axes[1],
    )
    t = np.clip((r - 1.0) / (render.HEAD_REACH - 1.0), 0.0, 1.0)
    w = (1.0 - t * t * (3.0 - 2.0 * t))[..., None]
    expected = np.stack([x, y], -1) + w * (q - np.stack([x, y], -1))
    assert np.abs(got - expected).max() < 1e-3
    assert (r < 1).any() and (r > render.HEAD_REACH).any()


def test_closing_lid_covers_the_eye_instead_of_squashing_it(driving_frames) -> None:
    """A lid brought down to its lower partner: the eye opening keeps its source shape
    (drawn behind the lid) and the closed lid shows skin where the iris and lashes were."""
    from avatarlab.engines.reenact import render
    from avatarlab.engines.warp import topology as tp

    frame = driving_frames[0]
    layout, target = _layout_and_target(driving_frames, 0)
    target = target[:, :2].copy()
    up, low = list(tp.RIGHT_LID_UPPER), list(tp.RIGHT_LID_LOWER)
    target[up] = target[low] + 0.1 * (target[up] - target[low])
    opening, closure = render.lid_closure(layout, target)
    assert closure[:7].min() > 0.8 and closure[7:].max() < 0.2
    assert np.abs(opening[:7] - layout.vertices[up]).max() < 0.5  # the eye keeps its opening
    out = render.warp_face(frame, layout, target, np.zeros(len(target)))
    # where the eye was open, the closed lid shows skin: brighter than the iris and lashes
    centre = np.round(
        layout.vertices[list(tp.RIGHT_LID_UPPER)][3] * 0.5 + layout.vertices[low][3] * 0.5
    ).astype(int)
    assert out[centre[1], centre[0]].mean() > frame[centre[1], centre[0]].mean() + 20


def test_gaze_moves_the_iris_as_a_disc_and_leaves_the_rest(driving_frames) -> None:
    """EyeSource.gaze: the moved iris centre samples the source iris centre, the sclera
    it leaves samples sclera, and positions outside the opening are unchanged."""
    layout, _ = _layout_and_target(driving_frames, 0)
    eye = layout.gaze[0]
    assert eye is not None and eye.radius > 1.0
    shift = np.array([0.6 * eye.radius, 0.0])
    centre = eye.iris + shift
    row = int(np.floor(eye.iris[1] + 0.5)) - eye.y0
    lo = eye.left[row]
    vacated = np.array([eye.iris[0] - 0.5 * eye.radius, eye.iris[1]])  # iris before, not after
    outside = np.array([lo - 5.0, eye.iris[1]])
    got = eye.gaze(np.vstack([centre, vacated, outside]), shift)
    assert np.abs(got[0] - eye.iris).max() < 1e-6  # the moved centre shows the iris centre
    assert got[1, 0] < eye.iris[0] - eye.radius  # comes from the sclera beside the iris
    assert np.array_equal(got[2], outside)


def _eye_patch(layout, eye: int):
    """The source vertices, a box around one eye and its identity map ``(h, w, 2)``."""
    from avatarlab.engines.reenact import render
    from avatarlab.engines.warp import field as fld
    from avatarlab.face import topology as T

    loop = (T.RIGHT_EYE, T.LEFT_EYE)[eye]
    src = layout.vertices.copy()
    box = fld.Region.around(src[list(loop)], (10_000, 10_000, 3), pad=6)
    x, y = np.meshgrid(np.arange(box.x0, box.x1), np.arange(box.y0, box.y1))
    xy = np.stack([x, y], -1).astype(np.float32)
    return src, box, xy, loop, render


def test_squinting_eye_is_covered_not_squashed(driving_frames) -> None:
    """A lower lid risen 40% of the way to the upper one: inside the narrowed opening the
    eyeball is sampled rigidly (the identity here, corners unmoved), where the
    piecewise-affine fan would squash it towards the lids."""
    from avatarlab.engines.warp import topology as tp

    layout, _ = _layout_and_target(driving_frames, 0)
    src, box, xy, loop, render = _eye_patch(layout, 0)
    dst = src.copy()
    low, up = list(tp.RIGHT_LID_LOWER), list(tp.RIGHT_LID_UPPER)
    dst[low] += 0.4 * (src[up][::-1] - src[low])  # lower lid listed corner to corner, reversed
    fan = xy.copy()
    render.rasterise(fan, src, dst, layout.eyes, render.Grid.over(box, 1.0))
    rigid = fan.copy()
    render.rigid_eyeball(rigid, box, src, dst, 0)
    iris = np.round(src[468] - [box.x0, box.y0]).astype(int)  # the iris centre's pixel
    assert np.abs(rigid[iris[1], iris[0]] - xy[iris[1], iris[0]]).max() < 1e-3
    assert abs(fan[iris[1], iris[0], 1] - xy[iris[1], iris[0], 1]) > 0.5  # the fan squashes
    changed = np.abs(rigid - fan).max(-1) > 1e-3
    assert changed.sum() > 20  # and only inside the eye: the lids' skin keeps the fan's map
    rows, cols = np.nonzero(changed)
    outline = dst[list(loop)]
    assert (cols + box.x0 >= outline[:, 0].min() - 1).all()
    assert (cols + box.x0 <= outline[:, 0].max() + 1).all()


def test_wider_opening_is_stretched_from_inside_the_source_opening(driving_frames) -> None:
    """An upper lid raised 30%: every pixel of the taller opening samples the source
    opening (its own column's lids), none the skin above it."""
    from avatarlab.engines.reenact.render import OPENING_START
    from avatarlab.engines.warp import topology as tp

    layout, _ = _layout_and_target(driving_frames, 0)
    src, box, xy, loop, render = _eye_patch(layout, 0)
    dst = src.copy()
    up, low = list(tp.RIGHT_LID_UPPER), list(tp.RIGHT_LID_LOWER)
    lift = 0.3 * (src[up] - src[low][::-1])
    dst[up] += lift
    dst[OPENING_START : OPENING_START + len(up)] += lift
    got = xy.copy()
    render.rigid_eyeball(got, box, src, dst, 0)
    moved = np.abs(got - xy).max(-1) > 1e-3
    assert moved.sum() > 20
    upper, lower = render._lid_curves(src[list(loop)])
    x, y = got[moved, 0], got[moved, 1]
    assert (y >= np.interp(x, upper[:, 0], upper[:, 1]) - 1e-3).all()
    assert (y <= np.interp(x, lower[:, 0], lower[:, 1]) + 1e-3).all()


def test_gaze_down_slides_the_iris_under_the_lid_margin(driving_frames) -> None:
    """A downward gaze never samples above the source's upper lid for a pixel inside the
    opening: the lash line stays where the lid is instead of being dragged over the iris."""
    layout, _ = _layout_and_target(driving_frames, 0)
    eye = layout.gaze[0]
    assert eye is not None and eye.upper is not None
    top = float(np.interp(eye.iris[0], eye.upper[:, 0], eye.upper[:, 1]))
    near_lid = np.array([[eye.iris[0], top + 0.3], [eye.iris[0], eye.iris[1]]])
    got = eye.gaze(near_lid, np.array([0.0, 0.5 * eye.radius]))
    lid_at = np.interp(got[:, 0], eye.upper[:, 0], eye.upper[:, 1])
    assert (got[:, 1] >= lid_at - 1e-6).all()
    assert got[1, 1] < eye.iris[1] - 0.4 * eye.radius  # mid-iris still moves with the gaze


def test_lid_layer_closes_the_held_open_eye(driving_frames) -> None:
    """With the lid layer, a closing lid is held open in the warp and painted shut:
    skin (brighter than the iris) where the eye was, and the layer's closure is ~1."""
    from avatarlab.engines.reenact import render
    from avatarlab.engines.warp import topology as tp
    from avatarlab.engines.warp.lids import LidLayer

    frame = driving_frames[0]
    layout, target = _layout_and_target(driving_frames, 0)
    target = target[:, :2].copy()
    up, low = list(tp.RIGHT_LID_UPPER), list(tp.RIGHT_LID_LOWER)
    target[up] = target[low] + 0.05 * (target[up] - target[low])
    held, closure = render.hold_lids_open(layout, target)
    assert closure[0] > 0.9 and closure[1] == 0.0
    assert np.abs(held[up] - layout.vertices[up]).max() < 0.5
    lids = LidLayer(frame, layout.vertices[: tp.N_FACE])
    out = render.warp_face(frame, layout, target, np.zeros(len(target)), lids)
    iris = np.round(layout.vertices[468]).astype(int)
    assert out[iris[1], iris[0]].mean() > frame[iris[1], iris[0]].mean() + 40
    left_iris = np.round(layout.vertices[473]).astype(int)  # the other eye stays open
    assert (
        abs(
            int(out[left_iris[1], left_iris[0]].mean())
            - int(frame[left_iris[1], left_iris[0]].mean())
        )
        < 15
    )


def test_frame_zero_reproduces_the_source_and_motion_follows(driving_frames) -> None:
    from avatarlab.engines.reenact.engine import ReenactEngine
    from avatarlab.face import face_mesh

    engine = ReenactEngine()
    avatar = engine.prepare(driving_frames[0])
    out = list(engine.reenact(avatar, MotionDriver(live=iter(driving_frames))))
    assert len(out) == len(driving_frames)
    assert out[0].shape == driving_frames[0].shape and out[0].dtype == np.uint8
    assert np.abs(out[0].astype(int) - driving_frames[0]).mean() < 0.1
    last_real, last_out = face_mesh(driving_frames[-1]), face_mesh(out[-1])
    first = face_mesh(driving_frames[0])
    assert last_real is not None and last_out is not None and first is not None
    moved = np.abs(last_real[:, :2] - first[:, :2]).mean()
    error = np.abs(last_real[:, :2] - last_out[:, :2]).mean()
    assert moved > 2.0 and error < 0.35 * moved
    # the far background does not move
    assert np.abs(out[-1][:8, :8].astype(int) - driving_frames[0][:8, :8]).max() <= 2


def test_cross_reenactment_keeps_the_portrait(data_dir: Path, driving_frames) -> None:
    from avatarlab.engines.reenact.engine import ReenactEngine
    from avatarlab.media import read_image

    image = read_image(data_dir / "image" / "cartoon_boy.png")
    engine = ReenactEngine()
    avatar = engine.prepare(image)
    out = list(engine.reenact(avatar, MotionDriver(live=iter(driving_frames[:6]))))
    assert [o.shape for o in out] == [image.shape] * 6
    assert np.abs(out[0].astype(int) - image).mean() < 0.2


def test_image_driver_eases_in_and_blinks(portrait: np.ndarray, driving_frames) -> None:
    from avatarlab.engines.reenact.engine import ReenactEngine

    engine = ReenactEngine(FaceReenactOptions(blink_rate=60.0, seed=3))
    avatar = engine.prepare(portrait)
    small = portrait[::2, ::2].copy()
    avatar = engine.prepare(small)
    driver = MotionDriver(image=driving_frames[12], fps=25.0, duration=1.2)
    out = list(engine.reenact(avatar, driver))
    assert len(out) == 30
    assert np.abs(out[0].astype(int) - small).mean() < 0.2
    assert np.abs(out[-1].astype(int) - small).mean() > np.abs(out[3].astype(int) - small).mean()


def test_speech_driver_is_refused(portrait: np.ndarray) -> None:
    from avatarlab.engines import Driver
    from avatarlab.engines.reenact.engine import ReenactEngine

    engine = ReenactEngine()
    avatar = engine.prepare(portrait[::2, ::2].copy())
    with pytest.raises(OptionError, match="not speech"):
        engine.render(avatar, Driver(text="hello"))
    with pytest.raises(OptionError, match="camera frames"):
        next(engine.render_stream(avatar, [np.zeros(160, np.float32)], 16000))


# -- the task and bad input --------------------------------------------------------------
def _write(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    from avatarlab.media import write_video

    write_video(path, frames, fps=fps, crf=10)
    return path


def test_task_writes_one_frame_per_driving_frame(tmp_path: Path, driving_frames) -> None:
    from avatarlab.media import probe
    from avatarlab.tasks.reenact import reenact

    drive = _write(tmp_path / "drive.mp4", driving_frames[:10], fps=20.0)
    out = tmp_path / "out.mp4"
    result = reenact(driving_frames[0], drive, out=out)
    info = probe(out)
    assert (result.frames, info.n_frames, info.fps) == (10, 10, 20.0)
    assert (info.width, info.height) == (driving_frames[0].shape[1], driving_frames[0].shape[0])
    assert result.audio.startswith("none")


def test_driving_face_lost_is_held_and_reported(tmp_path: Path, driving_frames) -> None:
    from avatarlab.tasks.reenact import reenact

    frames = list(driving_frames[:10])
    for k in (4, 5, 6):
        frames[k] = np.full_like(frames[k], 90)
    drive = _write(tmp_path / "lost.mp4", frames)
    result = reenact(driving_frames[0], drive, out=tmp_path / "out.mp4")
    assert result.frames == 10
    assert any("frames 4-6" in n and "held the last pose" in n for n in result.notes)


def test_no_face_anywhere_leaves_no_file(tmp_path: Path, driving_frames) -> None:
    from avatarlab.tasks.reenact import reenact

    drive = _write(tmp_path / "blank.mp4", [np.full((64, 64, 3), 90, np.uint8)] * 5)
    out = tmp_path / "out.mp4"
    with pytest.raises(NoFaceError, match="no face in any of the 5 frames"):
        reenact(driving_frames[0], drive, out=out)
    assert not out.exists() and not list(tmp_path.glob("*out*"))
    with pytest.raises(NoFaceError, match="no face found in the image"):
        reenact(np.full((64, 64, 3), 90, np.uint8), drive, out=out)


def test_extreme_aspect_ratio_and_speech_engine_refused(tmp_path: Path, driving_frames) -> None:
    from avatarlab.tasks.reenact import reenact

    with pytest.raises(MediaError, match="longer than"):
        reenact(np.zeros((40, 400, 3), np.uint8), tmp_path / "x.mp4", out=tmp_path / "o.mp4")
    with pytest.raises(OptionError, match="motion engine"):
        reenact(
            driving_frames[0],
            driving_frames[1],
            out=tmp_path / "o.mp4",
            options=ReenactOptions(engine="warp"),
        )


def test_teeth_edges_follow_the_head_and_the_jaw_not_the_lips(driving_frames) -> None:
    """Unmoved face: the upper incisors' edge sits REST_SHOW_CM below the closed-lip line.
    Lips alone parting move neither row; the chin dropping 1 cm drops only the lower row."""
    from avatarlab.engines.reenact import render
    from avatarlab.engines.warp import mouth
    from avatarlab.engines.warp import topology as tp
    from avatarlab.face import topology as T

    layout, _ = _layout_and_target(driving_frames, 0)
    src = layout.vertices[: T.NUM_MESH_POINTS].astype(np.float64)
    scale = float(np.linalg.norm(src[T.RIGHT_EYE_CORNERS[0]] - src[T.LEFT_EYE_CORNERS[0]])) / 9.0

    def edges(target: np.ndarray) -> tuple[float, float]:
        g = mouth.MouthGeometry.from_points(target, scale)
        edge, tips = render.teeth_edges(layout, target, g)
        line = 0.5 * (target[T.UPPER_LIP_INNER] + target[T.LOWER_LIP_INNER])
        y0 = float((line - g.centre) @ g.ey) / g.scale  # relative to the lips' line
        return edge - y0, tips - y0

    edge, tips = edges(src)
    assert edge == pytest.approx(render.REST_SHOW_CM, abs=1e-6)
    assert tips == pytest.approx(edge - render.OVERBITE_CM, abs=1e-6)
    down = np.array([0.0, scale])  # 1 cm down the image (the face is upright)
    parted = src.copy()
    parted[list(tp.MOUTH_LOWER)] += 0.5 * down
    parted[list(tp.MOUTH_UPPER)] -= 0.3 * down
    g0 = mouth.MouthGeometry.from_points(src, scale)
    moved = render.teeth_edges(layout, parted, mouth.MouthGeometry.from_points(parted, scale))
    shift = float((mouth.MouthGeometry.from_points(parted, scale).centre - g0.centre) @ g0.ey)
    ref = render.teeth_edges(layout, src, g0)
    assert moved[0] + shift / scale == pytest.approx(ref[0], abs=0.02)  # the skull's row stays
    assert moved[1] + shift / scale == pytest.approx(ref[1], abs=0.02)
    jaw = src.copy()
    jaw[T.CHIN] += down
    dropped = render.teeth_edges(layout, jaw, g0)
    assert dropped[0] == pytest.approx(ref[0], abs=0.02)
    assert dropped[1] - ref[1] == pytest.approx(1.0, abs=0.05)


def test_a_toothy_smile_on_closed_lips_shows_teeth_not_a_dark_hole(driving_frames) -> None:
    """The driver smiles with its teeth (frame 28); the source (frame 0) has closed lips, so
    the interior is painted. Hung from the head and the jaw (render.teeth_edges), the
    teeth fill the opening the raised lip leaves: the mouth's inside (re-tracked) is about
    as bright as the real frame's own teeth (the lip-hung crowns left a dark cavity: 0.69)."""
    import cv2

    from avatarlab.engines.reenact import ReenactEngine
    from avatarlab.engines.warp.mouth import luminance
    from avatarlab.face import face_mesh
    from avatarlab.face import topology as T

    def inside(frame: np.ndarray) -> float:
        mesh = face_mesh(frame)
        assert mesh is not None
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(mesh[list(T.LIPS_INNER), :2]).astype(np.int32)], 1)
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
        assert mask.sum() > 500
        return float(luminance(frame[mask > 0].astype(np.float64)).mean())

    engine = ReenactEngine()
    avatar = engine.prepare(driving_frames[0])
    assert avatar.describe()[0].endswith("synthetic")
    smile = driving_frames[14]
    out = list(engine.reenact(avatar, MotionDriver(live=[driving_frames[0], smile])))[-1]
    assert inside(out) > 0.85 * inside(smile)


# -- real clips (slow) -----------------------------------------------------------------------
@pytest.mark.slow
def test_self_reenactment_on_expressions_meets_targets(tmp_path: Path, data_dir: Path) -> None:
    """bench/reenact.py's measurement on one clip: AKD, openings, identity."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_reenact", Path(__file__).resolve().parents[2] / "bench" / "reenact.py"
    )
    bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    row = bench.run(data_dir / "video" / "expressions_silent.mp4", tmp_path)
    assert row["akd"] <= 0.05 and row["still_akd"] > 2 * row["akd"]
    assert row["mouth_r"] >= 0.9 and row["csim"] >= 0.95
    # The iris moves with the gaze (render.EyeSource): with it frozen yaw r falls to
    # 0.42-0.48, since the static mesh the bench poses reads yaw partly from the eyes.
    assert row["yaw_r"] >= 0.8
    # Issue 12's targets, not met yet on this clip. Eye r 0.73-0.74: the tracker mesh we
    # drive with itself correlates 0.83 with dlib on the real frames, the re-encoded real
    # clip scores 0.91 (bench/reenact.py --ceiling; bench/reenact_eyes.py per frame).
    # Yaw r 0.869-0.909: the head turns within 4.5 degrees, and changes that leave the
    # pose alone (lid shading, the painted teeth) move the static mesh's yaw by 0.3-0.8.
    missed = [
        f"{key} {row[key]:.3f} < {bound}"
        for key, bound in (("eye_r", 0.8), ("yaw_r", 0.9))
        if row[key] < bound
    ]
    if missed:
        pytest.xfail(f"issue 12 targets, open: {', '.join(missed)}")
