"""Warp engine faces: brows that lift on pitch accents, a smile that changes."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.engines.warp import WarpEngine, WarpOptions, motion, prosody
from avatarlab.engines.warp.rig import Pose
from avatarlab.media import SPEECH_RATE

FPS = 25.0
SECONDS = 4.6
"""english_radio_8s's first seconds hold one brow raise (about 3.3 s) with calm speech around."""

RIGHT_BROW = (105, 66, 107, 65, 52)
LEFT_BROW = (334, 296, 336, 295, 282)
RIGHT_LID, LEFT_LID = 159, 386


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def avatar(portrait):
    return WarpEngine(WarpOptions(head_motion=0.0, blink_rate=0.0)).prepare(portrait)


@pytest.fixture(scope="module")
def radio(data_dir) -> np.ndarray:
    from avatarlab.media import read_audio

    audio = read_audio(data_dir / "audio" / "english_radio_8s.wav", SPEECH_RATE)
    return audio[: int(SECONDS * SPEECH_RATE)]


def _expressions(audio: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """``(frames, 2)`` brow raise and smile of the head motion driven by ``audio``."""
    count = int(np.ceil(len(audio) / SPEECH_RATE * FPS))
    rows = prosody.prosody_frames(audio, FPS, count)
    head = motion.HeadMotion(amount, FPS, seed)
    out = []
    for level, pitch in rows:
        head.step(0.3, (float(level), float(pitch)))
        out.append((head.expression.brow_raise, head.expression.smile))
    return np.array(out)


def _brow_heights(mesh: np.ndarray) -> np.ndarray:
    """Each brow's height above its upper lid, over the face height."""
    height = np.linalg.norm(mesh[152, :2] - mesh[10, :2])
    right = mesh[RIGHT_LID, 1] - mesh[list(RIGHT_BROW), 1].mean()
    left = mesh[LEFT_LID, 1] - mesh[list(LEFT_BROW), 1].mean()
    return np.array([right, left]) / height


# -- the rig on rendered frames ----------------------------------------------------------------


def test_brow_raise_lifts_both_brows_and_leaves_the_eyes(avatar):
    from avatarlab.face import face_mesh

    engine = WarpEngine(WarpOptions(head_motion=0.0, blink_rate=0.0))
    rest = face_mesh(engine.render_pose(avatar, Pose()))
    raised = face_mesh(engine.render_pose(avatar, Pose(brow_raise=1.0)))
    assert rest is not None and raised is not None
    lift = rest[:, 1] - raised[:, 1]  # pixels up
    brows = np.array([lift[list(RIGHT_BROW)].mean(), lift[list(LEFT_BROW)].mean()])
    assert (brows > 2.0).all() and abs(brows[0] - brows[1]) < 0.4 * brows.mean()  # together
    lids = lift[[RIGHT_LID, LEFT_LID, 145, 374]]
    assert np.abs(lids).max() < 0.3 * brows.min()  # the eyes stay
    assert np.abs(lift[[1, 13, 14, 152]]).max() < 0.5  # nose, lips, chin stay
    # more at the inner end than the outer one
    inner, outer = lift[[107, 336]].mean(), lift[[70, 300]].mean()
    assert inner > outer > 0.3 * inner


def test_smile_raises_and_widens_the_lip_corners(avatar):
    from avatarlab.face import face_mesh

    engine = WarpEngine(WarpOptions(head_motion=0.0, blink_rate=0.0))
    rest = face_mesh(engine.render_pose(avatar, Pose()))
    smile = face_mesh(engine.render_pose(avatar, Pose(smile=1.0)))
    assert rest is not None and smile is not None
    up = rest[[61, 291], 1] - smile[[61, 291], 1]
    width = lambda m: np.linalg.norm(m[61, :2] - m[291, :2])  # noqa: E731
    assert (up > 1.0).all()  # both corners up, pixels (5 px asked: the tracker holds back)
    assert width(smile) > width(rest) + 2.0
    assert abs(rest[0, 1] - smile[0, 1]) < 0.5 * up.mean()  # the upper lip's middle stays
    assert (
        np.abs(smile[list(RIGHT_BROW + LEFT_BROW)] - rest[list(RIGHT_BROW + LEFT_BROW)])[:, 1].max()
        < 0.5
    )


# -- the schedule ---------------------------------------------------------------------------


def test_brows_lift_a_few_times_on_accents_and_the_smile_drifts(data_dir):
    from avatarlab.media import read_audio

    audio = read_audio(data_dir / "audio" / "english_60s.wav", SPEECH_RATE)
    life = _expressions(audio, 0.5, 0)
    brow, smile = life[:, 0], life[:, 1]
    starts = np.flatnonzero((brow[1:] > 0.05) & (brow[:-1] <= 0.05))
    per_10s = len(starts) / (len(audio) / SPEECH_RATE / 10.0)
    assert 1.0 <= per_10s <= 5.0  # a few per sentence, not every syllable (~3 per second)
    assert np.diff(starts).min() >= motion.BROW_GAP_S * FPS
    assert 0.3 < brow.max() <= 1.0 and np.mean(brow > 0.05) < 0.35  # brief
    # a smile that changes: slow (phrase level), small, never gone while speaking
    assert smile[250:].min() > 0.05 and smile.max() < 0.6
    assert np.ptp(smile[250:]) > 0.1
    assert np.abs(np.diff(smile)).max() < 0.02  # per frame: no jumps


def test_no_brows_or_smile_without_head_motion_and_the_seed_decides(radio):
    still = _expressions(radio, 0.0, 0)
    assert not still.any()
    a, b, c = _expressions(radio, 1.0, 3), _expressions(radio, 1.0, 3), _expressions(radio, 1.0, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_streamed_expressions_equal_the_whole_clip(radio):
    whole = _expressions(radio, 1.0, 0)
    stream = prosody.StreamingProsody(FPS)
    head = motion.HeadMotion(1.0, FPS, 0)
    count = len(whole)
    got: list[tuple[float, float]] = []

    def take() -> None:
        head.step(0.3, stream.frame(len(got)))
        got.append((head.expression.brow_raise, head.expression.smile))

    step = 640
    for i in range(0, len(radio), step):
        stream.push(radio[i : i + step])
        ready = (i + step) / SPEECH_RATE - 0.5 * prosody.WINDOW / SPEECH_RATE
        while len(got) < count and (len(got) + 0.5) / FPS <= ready:
            take()
    stream.push(np.zeros(0, np.float32), last=True)
    while len(got) < count:
        take()
    assert np.array_equal(np.asarray(got), whole)


# -- the whole engine -------------------------------------------------------------------------


@pytest.mark.slow
def test_rendered_brows_rise_on_emphasis_frames_only(data_dir, radio):
    """Head motion on, tracked brows over lids: up on the accent's frames, not between."""
    from avatarlab.engines.base import Driver
    from avatarlab.face import face_mesh
    from avatarlab.media import read_image
    from avatarlab.speech import analyze_speech

    woman = read_image(data_dir / "image" / "anime_girl.jpg")  # a photo, head and shoulders
    speech = analyze_speech(audio=radio, sample_rate=SPEECH_RATE, fps=FPS, method="acoustic")
    life = _expressions(radio, 1.0, 0)
    brow = life[: len(speech.mouth.params), 0]
    peak = np.flatnonzero(brow > 0.7 * brow.max())
    calm = np.flatnonzero(brow == 0.0)[::6]
    assert len(peak) >= 3 and len(calm) >= 10
    engine = WarpEngine(WarpOptions(head_motion=1.0, blink_rate=0.0, seed=0))
    heights = {}
    for k, frame in enumerate(engine.render(engine.prepare(woman), Driver(speech=speech))):
        if k in peak or k in calm:
            mesh = face_mesh(frame)
            assert mesh is not None
            heights[k] = _brow_heights(mesh)
    up = np.array([heights[k] for k in peak])
    still = np.array([heights[k] for k in calm])
    lift = up.mean(axis=0) - still.mean(axis=0)
    assert (lift > 0.01).all()  # both brows, face heights (~3 px here)
    assert (still.std(axis=0) < 0.4 * lift).all()  # between accents the brows stay
