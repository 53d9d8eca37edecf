"""Warp engine blinks: the lid layer closes both eyes, hides the iris, keeps skin sharp.

Everything is measured on rendered frames of real portraits with our own face mesh,
as a viewer would judge them: the eye aspect ratio at mid-blink, the iris colour
inside the eye opening, and the Laplacian-variance sharpness of the closed lid
against the skin around the eye.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import pytest

from avatarlab.engines.warp import WarpEngine, WarpOptions, motion
from avatarlab.engines.warp import topology as tp
from avatarlab.engines.warp.rig import Pose
from avatarlab.face import topology as T

PEOPLE = ("anime_girl.jpg", "cartoon_boy.png")
"""Two different women's photos (the file names are historical, see the data README)."""
OTHERS = (
    "man_green.jpg",
    "woman_photo.jpg",
    "full_body.png",
    pytest.param(
        "painting.jpg",
        marks=pytest.mark.xfail(
            strict=True,
            reason="issue 15: the tracker reads the man's closed left eye at EAR ~0.15 (right"
            " ~0.07); it follows his own upper fold and eye-bag crease, not the drawn lid",
        ),
    ),
    pytest.param(
        "monalisa.png",
        marks=pytest.mark.xfail(
            strict=True, reason="issue 15: 12-16 px eyes; the closed left eye reads EAR ~0.17"
        ),
    ),
)
"""The other portraits with a face: two paintings, a stylised photo, a photo-like man and
Mona Lisa (data README)."""
LASH_BAND = 0.1
EYES = (
    (tp.RIGHT_LID_UPPER, tp.RIGHT_LID_LOWER, tp.RIGHT_EYE_CORNERS, T.RIGHT_IRIS),
    (tp.LEFT_LID_UPPER, tp.LEFT_LID_LOWER, tp.LEFT_EYE_CORNERS, T.LEFT_IRIS),
)


@dataclass
class Blink:
    """A portrait rendered open, half and fully closed (same mouth), and its mesh."""

    open: np.ndarray
    half: np.ndarray
    closed: np.ndarray
    mesh: np.ndarray  # (478, 3) of the open portrait


@lru_cache(maxsize=4)
def _blink(name: str) -> Blink:
    from avatarlab.face import face_mesh
    from avatarlab.media import read_image
    from tests.conftest import DATA

    path = DATA / "image" / name
    if not path.exists():
        pytest.skip(f"{path} is absent: integration tests need ../shared beside the repo")
    image = read_image(path)
    engine = WarpEngine(WarpOptions(head_motion=0.0, blink_rate=0.0))
    avatar = engine.prepare(image)
    mesh = face_mesh(image)
    assert mesh is not None
    return Blink(
        engine.render_pose(avatar, Pose(blink=0.0)),
        engine.render_pose(avatar, Pose(blink=0.5)),
        engine.render_pose(avatar, Pose(blink=1.0)),
        mesh,
    )


def _aspects(frame: np.ndarray) -> np.ndarray:
    """Eye aspect ratio (mean of two lid gaps over the corner distance), right and left eye,
    from our face mesh on ``frame``."""
    from avatarlab.face import face_mesh

    mesh = face_mesh(frame)
    assert mesh is not None, "the face mesh lost the face on a blink frame"
    out = []
    for gaps, corners in (
        (((160, 144), (158, 153)), (33, 133)),
        (((385, 380), (387, 373)), (263, 362)),
    ):
        gap = np.mean([np.linalg.norm(mesh[a, :2] - mesh[b, :2]) for a, b in gaps])
        out.append(gap / np.linalg.norm(mesh[corners[0], :2] - mesh[corners[1], :2]))
    return np.array(out)


def _polygon(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points * 4).astype(np.int32)], (1,), shift=2)
    return mask.astype(bool)


def _lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (L in 0..100) of an RGB uint8 image."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    return (lab - [0.0, 128.0, 128.0]) * [100.0 / 255.0, 1.0, 1.0]


def _laplacian(image: np.ndarray) -> np.ndarray:
    return cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)


def _iris_shares(blink: Blink) -> list[tuple[float, float]]:
    """Per eye (right, left): the share of the eye opening (without the closed lash band)
    that has the open frame's iris colour, in the open and in the closed frame."""
    mesh = blink.mesh[:, :2]
    shares = []
    lab_open, lab_closed = _lab(blink.open), _lab(blink.closed)
    ys, xs = np.mgrid[: blink.open.shape[0], : blink.open.shape[1]]
    for upper, lower, corners, iris in EYES:
        opening = _polygon(
            blink.open.shape,
            np.vstack(
                [mesh[corners[0]], mesh[list(upper)], mesh[corners[1]], mesh[list(lower)][::-1]]
            ),
        )
        centre = mesh[iris[0]]
        radius = np.linalg.norm(mesh[list(iris[1:])] - centre, axis=1).mean()
        r = np.hypot(xs - centre[0], ys - centre[1]) / radius
        ring = opening & (r > 0.5) & (r < 0.9)
        assert ring.sum() > 20
        mean = lab_open[ring].mean(0)
        tau = float(np.median(np.linalg.norm(lab_open[ring] - mean, axis=1)))
        width = float(np.linalg.norm(mesh[corners[0]] - mesh[corners[1]]))
        low = np.vstack([mesh[corners[0]], mesh[list(lower)], mesh[corners[1]]])
        order = np.argsort(low[:, 0])
        lower_y = np.interp(xs, low[order, 0], low[order, 1])
        opening &= ys < lower_y - LASH_BAND * width
        share_open = np.mean(np.linalg.norm(lab_open[opening] - mean, axis=1) < tau)
        share_closed = np.mean(np.linalg.norm(lab_closed[opening] - mean, axis=1) < tau)
        shares.append((float(share_open), float(share_closed)))
    return shares


@pytest.mark.parametrize("name", PEOPLE)
def test_mid_blink_closes_both_eyes_together(name):
    blink = _blink(name)
    before = _aspects(blink.open)
    half, closed = _aspects(blink.half), _aspects(blink.closed)
    assert (before > 0.25).all()  # the portraits' eyes are open
    assert (closed < 0.1).all(), f"eye aspect ratios at mid-blink: {closed}"
    assert abs(closed[0] - closed[1]) < 0.03  # no wink
    assert ((half < 0.9 * before) & (half > closed)).all()  # on the way down, both at once


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_mid_blink_closes_both_eyes_of_every_portrait(name):
    """The shut frame reads as closed on both eyes, and hides the iris, on every portrait."""
    blink = _blink(name)
    assert (_aspects(blink.open) > 0.25).all()
    closed = _aspects(blink.closed)
    assert (closed < 0.1).all(), f"eye aspect ratios at mid-blink: {closed}"
    for share_open, share_closed in _iris_shares(blink):
        assert share_open > 0.1 and share_closed < 0.02


@pytest.mark.parametrize("name", PEOPLE)
def test_closed_lid_hides_the_iris(name):
    """Iris colour: the open frame's iris ring (between pupil and limbus, inside the eye
    opening). A pixel has it when within the median Lab distance of the iris pixels to
    their mean; in the open frame a good share of the opening has it, closed almost none.

    The closed lash line, along the lower lid, is left out (the lowest ``LASH_BAND`` eye
    widths of the opening): a dark iris and the lashes (and their antialiased edge
    against the lid) have the same colour, so no colour test can tell them apart."""
    for share_open, share_closed in _iris_shares(_blink(name)):
        assert share_open > 0.1  # the measure sees the iris when it is there
        assert share_closed < 0.02, f"{share_closed:.3f} of the closed eye has the iris colour"


@pytest.mark.parametrize("name", PEOPLE)
def test_closed_lid_is_as_sharp_as_the_skin_around_the_eye(name):
    """Laplacian variance of the closed lid (the upper half of the open eye's opening,
    middle 60 %) within 20 % of that of the skin within an eye width around the eye
    (pixels the blink leaves alone, without lashes and brows): no smear, no noise.

    The whole eye box's sharpness cannot be the measure: most of an open eye's
    Laplacian energy is the iris and its highlights, and real blinks in the shared
    clips keep only 0.23-0.49 of it (``hdtf_aoc_8s`` frames 10 and 34,
    ``expressions_silent`` frame 66)."""
    blink = _blink(name)
    mesh = blink.mesh[:, :2]
    changed = (np.abs(blink.closed.astype(int) - blink.open).max(-1) > 0).astype(np.uint8)
    changed = cv2.dilate(changed, np.ones((5, 5), np.uint8)).astype(bool)
    gray = cv2.cvtColor(blink.open, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap_open, lap_closed = _laplacian(blink.open), _laplacian(blink.closed)
    ys, xs = np.mgrid[: gray.shape[0], : gray.shape[1]]
    for upper, lower, corners, _ in EYES:
        up, low = mesh[list(upper)], mesh[list(lower)]
        centre = mesh[list(corners)].mean(0)
        width = float(np.linalg.norm(mesh[corners[0]] - mesh[corners[1]]))
        lid = _polygon(
            gray.shape,
            np.vstack([mesh[corners[0]], up, mesh[corners[1]], (0.5 * (up + low))[::-1]]),
        )
        lid = cv2.erode(lid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        lid &= np.abs(xs - centre[0]) < 0.3 * width
        skin = (np.abs(xs - centre[0]) < width) & (np.abs(ys - centre[1]) < 0.6 * width) & ~changed
        skin &= gray >= 0.7 * np.median(gray[skin])
        skin = cv2.erode(skin.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert lid.sum() > 30 and skin.sum() > 200
        ratio = float(lap_closed[lid].var() / lap_open[skin].var())
        assert 0.8 <= ratio <= 1.2, f"closed-lid / skin sharpness {ratio:.2f}"


def test_a_blink_changes_nothing_away_from_the_eyes():
    blink = _blink(PEOPLE[0])
    diff = np.abs(blink.closed.astype(int) - blink.open).max(-1) > 0
    mesh = blink.mesh[:, :2]
    near = np.zeros(diff.shape, bool)
    for eye in (T.RIGHT_EYE, T.LEFT_EYE):
        pts = mesh[list(eye)]
        w = np.ptp(pts[:, 0])
        x0, y0 = np.floor(pts.min(0) - 0.6 * w).astype(int)
        x1, y1 = np.ceil(pts.max(0) + 0.6 * w).astype(int)
        near[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert diff.any() and not (diff & ~near).any()


def test_blink_timing_closes_fast_holds_and_opens_slower():
    fps = 1000.0  # 1 ms frames
    schedule = motion.BlinkSchedule(17.0, fps, seed=5)
    blinks = schedule.blink_times(120.0)
    durations = np.array([d for _, d in blinks])
    assert durations.min() >= 0.3 and durations.max() <= 0.4
    starts = np.array([s for s, _ in blinks])
    assert 17 * 2 * 0.75 <= len(blinks) <= 17 * 2 * 1.25  # the rate is start to start
    for start, duration in blinks[:5]:
        frames = np.arange(int(start * fps), int((start + duration) * fps) + 2)
        closure = np.array([schedule.closure(int(f)) for f in frames])
        shut = np.flatnonzero(closure >= 0.999)
        assert len(shut) >= 0.035 * fps  # held shut about 40 ms
        closing = (shut[0] - np.flatnonzero(closure > 0)[0]) / fps
        opening = (np.flatnonzero(closure > 0)[-1] - shut[-1]) / fps
        assert 0.1 <= closing <= 0.15 and opening > 1.3 * closing
    # At 25 fps every blink shows one fully shut frame.
    video = motion.BlinkSchedule(17.0, 25.0, seed=5)
    frame_closure = np.array([video.closure(i) for i in range(25 * 120)])
    for start, duration in video.blink_times(120.0):
        inside = frame_closure[int(start * 25) : int((start + duration) * 25) + 1]
        assert inside.max() > 0.95
    assert np.diff(starts).min() >= motion.BLINK_MIN_GAP_S
