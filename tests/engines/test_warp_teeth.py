"""Warp engine mouth interior: separate teeth, lower teeth behind the lip, tongue, no flicker,
the mouth's axis, ``teeth="source"`` without teeth, and no black slot in ``dub``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import maximum_filter1d

from avatarlab.engines.warp import WarpEngine, WarpOptions, mouth
from avatarlab.engines.warp.rig import Pose

OPEN = Pose(jaw_open=1.0, lip_closed=0.0, teeth=1.0)
WIDE = Pose(jaw_open=1.3, lip_closed=0.0, teeth=1.0)


@pytest.fixture(scope="module")
def face_image() -> np.ndarray:
    """The astronaut's head, enlarged so a tooth spans several pixels (about 11 px/cm)."""
    import skimage.data

    crop = skimage.data.astronaut()[0:300, 80:380]
    return cv2.resize(crop, (512, 512), interpolation=cv2.INTER_CUBIC)


def _engine(teeth: str = "synthetic") -> WarpEngine:
    return WarpEngine(WarpOptions(head_motion=0.0, blink_rate=0.0, teeth=teeth))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def painted(face_image):
    engine = _engine()
    return engine, engine.prepare(face_image)


def _geometry(avatar, pose: Pose) -> mouth.MouthGeometry:
    face = avatar.faces[0]
    pts = face.vertices[:468] + face.rig.displacements(pose)
    return mouth.MouthGeometry.from_points(pts, face.rig.frame.scale)


def _sample(frame: np.ndarray, g: mouth.MouthGeometry, local: np.ndarray) -> np.ndarray:
    """RGB of ``frame`` at mouth-frame points ``(N, 2)`` cm (bilinear)."""
    pix = g.to_pixels(local).astype(np.float32)
    rgb = cv2.remap(frame, pix[None, :, 0], pix[None, :, 1], cv2.INTER_LINEAR)[0]
    return rgb.astype(np.float64)


def _from_lip(g: mouth.MouthGeometry, xs: np.ndarray, depth: float, lip: str) -> np.ndarray:
    """Points ``depth`` cm inside the mouth from the upper or the lower inner lip."""
    up, low = g.lip_y(xs)
    y = up + depth if lip == "upper" else low - depth
    return np.stack([xs, y], axis=-1)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2], strict=True))


def test_upper_teeth_are_separate_crowns_with_shaded_gaps(painted):
    engine, avatar = painted
    frame = engine.render_pose(avatar, OPEN)
    g = _geometry(avatar, OPEN)
    xs = np.linspace(-1.8, 1.8, 361)  # cm: central incisors to canines
    lum = mouth.luminance(_sample(frame, g, _from_lip(g, xs, 0.25, "upper")))
    peak = float(lum.max())
    # Crowns further round the arch are darker: compare with the brightest within 1 cm.
    envelope = maximum_filter1d(lum, size=101, mode="nearest")
    crowns = [(a, b) for a, b in _runs(lum > 0.9 * envelope) if xs[b - 1] - xs[a] > 0.2]
    assert len(crowns) >= 4  # several bright blobs along the row, each a crown
    for (a0, b0), (a1, b1) in zip(crowns, crowns[1:], strict=False):
        dip = float(lum[b0:a1].min())  # the gaps between them are shaded
        assert dip < 0.85 * min(lum[a0:b0].max(), lum[a1:b1].max())
    widths = [xs[b - 1] - xs[a] for a, b in crowns]
    assert max(widths) < 1.0  # cm: crowns, not one band
    # The crowns are the face's ivory, brighter than the skin; the gaps lean to the cavity.
    colours = mouth.FaceColours.sample(avatar.image, avatar.faces[0].vertices)
    assert peak > mouth.luminance(colours.skin)


def test_lower_teeth_show_only_their_tips_over_the_lower_lip(painted):
    engine, avatar = painted
    frame = engine.render_pose(avatar, WIDE)
    g = _geometry(avatar, WIDE)
    depth = np.arange(0.0, 0.7, 0.01)
    xs = np.full_like(depth, 0.35)  # the middle of a central incisor

    def shown(lip: str) -> float:
        pts = np.stack([xs, np.zeros_like(xs)], axis=-1)
        up, low = g.lip_y(xs)
        pts[:, 1] = up + depth if lip == "upper" else low - depth
        rgb = _sample(frame, g, pts)
        lum = mouth.luminance(rgb)
        ivory = rgb[:, 0] < 1.25 * 0.5 * (rgb[:, 1] + rgb[:, 2])  # teeth, not the red tongue
        runs = [(a, b) for a, b in _runs((lum > 0.6 * lum.max()) & ivory) if a <= 12]
        return float(depth[runs[0][1] - 1] - depth[runs[0][0]]) if runs else 0.0

    upper, lower = shown("upper"), shown("lower")
    assert upper > 0.4  # cm of upper crown below the upper lip
    assert 0.08 < lower < 0.6 * upper  # lower crowns: only the tips clear the lower lip


def test_tongue_is_reddish_relative_to_the_teeth(painted):
    engine, avatar = painted
    frame = engine.render_pose(avatar, WIDE)
    g = _geometry(avatar, WIDE)
    assert g.gap() > 1.4
    xs = np.linspace(-0.6, 0.6, 25)
    teeth = _sample(frame, g, _from_lip(g, xs, 0.25, "upper"))
    tongue = _sample(frame, g, _from_lip(g, xs, 0.4, "lower"))

    def redness(rgb: np.ndarray) -> float:
        return float(np.median(rgb[:, 0] / np.maximum(0.5 * (rgb[:, 1] + rgb[:, 2]), 1.0)))

    assert redness(tongue) > redness(teeth) + 0.25
    assert mouth.luminance(tongue).mean() < mouth.luminance(teeth).mean()


def test_interior_is_identical_frame_to_frame_at_the_same_pose(painted):
    from avatarlab.engines.warp.engine import _Session
    from avatarlab.speech import MOUTH_PARAMS

    engine, avatar = painted
    row = np.zeros(len(MOUTH_PARAMS))
    values = {"jaw_open": 1.0, "lip_closed": 0.0, "teeth": 1.0}
    for name, value in values.items():
        row[MOUTH_PARAMS.index(name)] = value
    session = _Session(engine, avatar)
    frames = [session.frame(row) for _ in range(4)]
    again = _Session(engine, avatar).frame(row)
    for f in [*frames[1:], again]:
        assert np.array_equal(f, frames[0])
    # ...and it is an interior with teeth, not an empty frame.
    assert int(np.abs(frames[0].astype(int) - avatar.image).max()) > 50


def _incisal_angle(frame: np.ndarray, g: mouth.MouthGeometry) -> float:
    """Angle (degrees, image axes) of the line along the upper teeth's free edge: the
    lowest bright pixel of each column in the upper half of the opening, fitted."""
    x0, y0 = np.floor(g.polygon.min(axis=0)).astype(int)
    x1, y1 = np.ceil(g.polygon.max(axis=0)).astype(int)
    inside = mouth.polygon_mask(g.polygon, (x0, y0), (y1 - y0, x1 - x0)) > 0.99
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rel = np.stack([xx - g.centre[0], yy - g.centre[1]], axis=-1) / g.scale
    lx, ly = rel @ g.ex, rel @ g.ey
    up, low = g.lip_y(lx)
    lum = mouth.luminance(frame[y0:y1, x0:x1])
    upper = inside & (ly < 0.5 * (up + low)) & (np.abs(lx) < 0.7 * g.half_width())
    bright = upper & (lum > 0.6 * lum[upper].max())
    cols = np.flatnonzero(bright.any(axis=0))
    assert len(cols) > 20
    lowest = np.array([np.flatnonzero(bright[:, c]).max() for c in cols])
    slope = np.polyfit(cols.astype(float), lowest.astype(float), 1)[0]
    return float(np.degrees(np.arctan(slope)))


@pytest.mark.parametrize("tilt", [0.0, 12.0])
def test_teeth_row_follows_the_lip_corners_axis(face_image, tilt):
    h, w = face_image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), tilt, 1.0)
    image = cv2.warpAffine(face_image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    engine = _engine()
    avatar = engine.prepare(image)
    frame = engine.render_pose(avatar, OPEN)
    g = _geometry(avatar, OPEN)
    face = avatar.faces[0]
    assert face is not None
    corners = (face.vertices[:468] + face.rig.displacements(OPEN))[[61, 291]]
    d = corners[1] - corners[0]
    lips_angle = float(np.degrees(np.arctan2(d[1], d[0])))
    assert abs(_incisal_angle(frame, g) - lips_angle) < 3.0


def test_a_lopsided_smile_does_not_tilt_the_teeth(painted):
    _, avatar = painted
    g = _geometry(avatar, OPEN)
    hw = g.half_width()
    lift = 0.25 * (g.upper[:, 0] / hw + 1.0)  # cm: the upper lip rises towards one corner
    upper = g.upper.copy()
    upper[:, 1] -= lift * (1.0 - np.abs(g.upper[:, 0] / hw) ** 4)  # corners stay put
    pix = g.to_pixels(np.vstack([upper, g.lower[-2:0:-1]]))
    lopsided = mouth.MouthGeometry(g.centre, g.ex, g.ey, g.scale, upper, g.lower, pix)
    canvas = np.full((512, 512, 3), 150, np.uint8)
    mouth.render_interior(canvas, lopsided, avatar.textures[0], teeth=1.0)
    axis = float(np.degrees(np.arctan2(g.ex[1], g.ex[0])))
    assert abs(_incisal_angle(canvas, lopsided) - axis) < 3.0


def test_anchored_teeth_stay_where_the_skull_holds_them(painted):
    """With ``teeth_edges`` (reenact), the upper crowns hang from a line fixed to the head: a
    wide opening whose lips are 1 cm from that line shows tooth from the upper lip down
    to the line's crown edge, then the lower row from the jaw's line; past a crown's
    height the gum shows. Without edges the crowns hang from the lip, cavity below."""
    _, avatar = painted
    g = _geometry(avatar, WIDE)
    up, low = (float(v[0]) for v in g.lip_y(np.array([0.0])))
    texture = avatar.textures[0]
    edge = up + 0.8  # the upper incisors' edge, 0.8 cm below the raised lip
    tips = edge - 0.2  # the lower tips, behind the upper crowns
    edges = (edge, tips)

    def column(anchored: bool) -> np.ndarray:
        canvas = np.full((512, 512, 3), 150, np.uint8)
        mouth.render_interior(canvas, g, texture, 1.0, 0.0, edges if anchored else None)
        depth = np.arange(0.05, low - up - 0.05, 0.02)
        return mouth.luminance(_sample(canvas, g, np.stack([0.3 + 0 * depth, up + depth], -1)))

    lum_lip, lum_skull = column(False), column(True)
    depth = np.arange(0.05, low - up - 0.05, 0.02)
    tooth = float(np.median(lum_skull[depth < 0.5]))
    assert tooth > 1.5 * float(np.median(lum_lip[(depth > 0.7) & (depth < 0.8)]))
    # Anchored: tooth all the way to the edge (0.8 cm) and below it (the lower row).
    assert np.median(lum_skull[(depth > 0.6) & (depth < 0.75)]) > 0.8 * tooth
    assert np.median(lum_skull[(depth > 0.85) & (depth < 1.0)]) > 0.6 * tooth
    # A lip raised beyond the crown's height bares the gum, darker and redder than tooth.
    high = (edge + 0.6, tips + 0.6)  # gum line 0.35 cm under the lip
    canvas = np.full((512, 512, 3), 150, np.uint8)
    mouth.render_interior(canvas, g, texture, 1.0, 0.0, high)
    gum = _sample(canvas, g, np.array([[0.3, up + 0.15]]))[0]
    crown = _sample(canvas, g, np.array([[0.3, up + 0.9]]))[0]
    assert mouth.luminance(gum) < 0.9 * mouth.luminance(crown)
    assert gum[0] / max(0.5 * (gum[1] + gum[2]), 1.0) > crown[0] / (0.5 * (crown[1] + crown[2]))


def test_teeth_source_on_closed_lips_falls_back_to_painted_teeth(painted):
    engine, avatar = painted
    closed = engine.render_pose(avatar, Pose())  # the same face, lips closed
    source = _engine("source")
    closed_avatar = source.prepare(closed)
    assert closed_avatar.teeth_source == "synthetic"
    frame = source.render_pose(closed_avatar, OPEN)
    g = _geometry(closed_avatar, OPEN)
    xs = np.linspace(-1.2, 1.2, 61)
    teeth = mouth.luminance(_sample(frame, g, _from_lip(g, xs, 0.2, "upper")))
    face = closed_avatar.faces[0]
    assert face is not None
    colours = mouth.FaceColours.sample(closed, face.vertices)
    assert np.percentile(teeth, 75) > 0.9 * mouth.luminance(colours.skin)  # teeth, not a hole


def _dark_real_texture(colours: mouth.FaceColours) -> mouth.MouthTexture:
    """A borrowed interior whose left half shows bright teeth and the rest is near-black."""
    upper = np.zeros((mouth.STRIP_ROWS, mouth.STRIP_COLS, 4), np.float32)
    upper[..., :3], upper[..., 3] = 8.0, 1.0
    upper[:14, : mouth.STRIP_COLS // 2, :3] = 0.95 * colours.teeth
    lower = np.zeros_like(upper)
    lower[..., :3], lower[..., 3] = 6.0, 1.0
    return mouth.MouthTexture(upper, lower, np.array([3.0, 2, 2], np.float32), 2.2, 1.0)


def test_borrowed_interiors_get_painted_teeth_where_theirs_are_dark():
    colours = mouth.FaceColours(skin=np.array([190.0, 140, 120]), lips=np.array([170.0, 85, 85]))
    real = _dark_real_texture(colours)
    filled, fraction = mouth.fill_missing_teeth(real, colours)
    assert 0.5 < fraction < 1.0
    ref = mouth.luminance(colours.teeth)
    lower_teeth = mouth.luminance(filled.lower[:4, 20:76, :3]).max(axis=0)
    assert (lower_teeth > 0.5 * ref).mean() > 0.7  # lower teeth along the lower lip
    dark_upper = mouth.luminance(filled.upper[:8, 56:80, :3]).max(axis=0)
    assert (dark_upper > 0.5 * ref).mean() > 0.7  # painted where the real teeth were dark
    kept = slice(0, mouth.STRIP_COLS // 2 - 12)  # real teeth are kept as they are
    assert np.allclose(filled.upper[:, kept], real.upper[:, kept], atol=1.0)
    assert mouth.luminance(filled.cavity) >= 0.5 * mouth.luminance(colours.cavity) - 1e-3


@pytest.mark.slow
def test_dub_never_shows_a_black_slot_where_lower_teeth_belong(data_dir):
    from avatarlab.engines.warp.engine import _Session
    from avatarlab.speech import analyze_speech

    engine = WarpEngine(WarpOptions())
    avatar = engine.prepare(data_dir / "video" / "talk_b.mp4")
    assert avatar.teeth_source == "video"
    speech = analyze_speech(text="Ah, I was eating apples at the bay. Wow!", fps=avatar.fps)
    params = speech.mouth.params
    colours = mouth.FaceColours.sample(*_first_face(avatar))
    skin = float(mouth.luminance(colours.skin))
    session = _Session(engine, avatar)
    levels: list[float] = []
    try:
        for j, row in enumerate(params[: avatar.n_source_frames]):
            frame = session.frame(row)
            face = avatar.faces[j]
            if face is None:
                continue
            pose = session_pose(session, row)
            pts = face.vertices[:468] + face.rig.displacements(pose, engine.options.expressiveness)
            g = mouth.MouthGeometry.from_points(pts, face.rig.frame.scale)
            if g.gap() < 0.6:
                continue
            xs = np.linspace(-0.4 * g.half_width(), 0.4 * g.half_width(), 41)
            tips = [
                np.percentile(mouth.luminance(_sample(frame, g, _from_lip(g, xs, d, "lower"))), 75)
                for d in (0.05, 0.1)  # cm above the lower lip: the lower teeth's tips
            ]
            levels.append(max(tips) / skin)
    finally:
        session.close()
    assert len(levels) >= 10
    # The video's own interiors leave 30-50 % of the skin's luminance there (a dark slot).
    assert min(levels) > 0.45
    assert np.median(levels) > 0.65


def _first_face(avatar) -> tuple[np.ndarray, np.ndarray]:
    from avatarlab.media import iter_frames

    j = next(i for i, f in enumerate(avatar.faces) if f is not None)
    for k, (frame, _) in enumerate(iter_frames(avatar.video)):
        if k == j:
            return frame, avatar.faces[j].vertices
    raise AssertionError("no face frame")


def session_pose(session, row: np.ndarray) -> Pose:
    """The mouth pose of one row of mouth parameters (no blink)."""
    c = session.columns
    names = ("jaw_open", "lip_spread", "lip_closed", "upper_lip_raise", "teeth")
    return Pose(**{n: float(row[c[n]]) for n in names})
