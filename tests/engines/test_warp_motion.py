"""Warp engine life: prosody, prosody-driven head motion, a rigid collar, lips at rest."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.engines.warp import WarpEngine, WarpOptions, motion, prosody
from avatarlab.media import SPEECH_RATE

FPS = 25.0


def _tone(f0: float, seconds: float, level: float = 0.3) -> np.ndarray:
    """A voiced-like harmonic tone at ``f0`` Hz, 16 kHz."""
    t = np.arange(int(seconds * SPEECH_RATE)) / SPEECH_RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (level * x / np.abs(x).max()).astype(np.float32)


# -- prosody ---------------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [90.0, 150.0, 260.0])
def test_pitch_of_a_harmonic_tone(f0):
    level, pitch = prosody.analyse_window(_tone(f0, 0.04)[: prosody.WINDOW])
    assert pitch == pytest.approx(12 * np.log2(f0 / 100.0), abs=0.3)  # semitones re 100 Hz
    assert -20.0 < level < 0.0


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(0).normal(0, 0.1, prosody.WINDOW).astype(np.float32)
    assert np.isnan(prosody.analyse_window(noise)[1])
    level, pitch = prosody.analyse_window(np.zeros(prosody.WINDOW, np.float32))
    assert np.isnan(pitch) and level < prosody.SILENCE_DB


def test_streamed_prosody_equals_the_whole_clip():
    audio = np.concatenate([_tone(120.0, 0.5), np.zeros(4000, np.float32), _tone(200.0, 0.4)])
    count = int(np.ceil(len(audio) / SPEECH_RATE * FPS))
    whole = prosody.prosody_frames(audio, FPS, count)
    stream = prosody.StreamingProsody(FPS)
    rows: list[tuple[float, float]] = []
    step = 640  # one frame of audio per chunk, frames taken with 20 ms look-ahead
    for i in range(0, len(audio), step):
        stream.push(audio[i : i + step])
        ready = (i + step) / SPEECH_RATE - 0.5 * prosody.WINDOW / SPEECH_RATE
        while len(rows) < count and (len(rows) + 0.5) / FPS <= ready:
            rows.append(stream.frame(len(rows)))
    stream.push(np.zeros(0, np.float32), last=True)
    rows += [stream.frame(k) for k in range(len(rows), count)]
    assert np.array_equal(np.asarray(rows), whole, equal_nan=True)
    voiced = np.isfinite(whole[:, 1])
    assert voiced[3:10].all() and not voiced[15:18].any()  # tone, pause


# -- head motion -----------------------------------------------------------------------------


def _phrases() -> list[tuple[float, float]]:
    """Six 1.2 s phrases with 0.5 s pauses; syllables (loudness bursts) at 4 Hz, pitch rising."""
    rows = []
    for phrase in range(6):
        for k in range(30):  # 1.2 s of speech
            syllable = 0.5 + 0.5 * np.cos(2 * np.pi * 4.0 * k / FPS)
            rows.append((-20.0 - 12.0 * (1 - syllable), 2.0 + 4.0 * syllable + phrase))
        rows += [(-80.0, np.nan)] * 12  # 0.48 s pause
    return rows


def _run(amount: float, seed: int, rows) -> np.ndarray:
    head = motion.HeadMotion(amount, FPS, seed)
    out = [head.step(0.3, row) for row in rows]
    return np.array([[o.yaw, o.pitch, o.roll, o.dx, o.dy, o.scale] for o in out])


def test_head_turns_between_phrases_and_holds_within():
    rows = _phrases()
    offsets = _run(1.0, 0, rows)
    assert np.array_equal(offsets, _run(1.0, 0, rows))  # the seed decides
    assert not np.array_equal(offsets, _run(1.0, 1, rows))
    assert not np.any(_run(0.0, 0, rows))
    yaw = offsets[:, 0]
    # mean yaw of the second half of each phrase (the posture reached)
    means = np.array([yaw[42 * p + 15 : 42 * p + 30].mean() for p in range(6)])
    within = np.mean([yaw[42 * p + 15 : 42 * p + 30].std() for p in range(6)])
    assert means.std() > 3.0 * within  # turns between phrases, little drift inside
    # smooth: at most 3 degrees per frame (75 degrees/s, a quick human head turn)
    assert np.abs(np.diff(offsets[:, :3], axis=0)).max() < 3.0


def test_stressed_syllables_nod_the_head():
    rows = _phrases()
    pitch = _run(1.0, 0, rows)[:, 1]
    flat = [(r[0], r[1]) if np.isnan(r[1]) else (-20.0, 4.0) for r in rows]  # no syllables
    steady = _run(1.0, 0, flat)[:, 1]
    # syllable onsets add a 4 Hz nodding on top of the same posture
    spectrum = np.abs(np.fft.rfft((pitch - steady)[: 42 * 6]))
    freqs = np.fft.rfftfreq(42 * 6, 1 / FPS)
    assert spectrum[(freqs > 3.0) & (freqs < 5.0)].max() > 3 * spectrum[freqs > 7.0].max()
    assert np.ptp(pitch - steady) > 1.0  # degrees


def test_jaw_alone_still_drives_motion():
    head = motion.HeadMotion(1.0, FPS, 0)
    jaw = (np.sin(np.arange(200) / 4.0) > 0.3).astype(float)
    offsets = [head.step(j) for j in jaw]
    assert any(not o.is_zero for o in offsets)
    assert motion.HeadOffset().is_zero and not motion.HeadOffset(yaw=1.0).is_zero


# -- the head warp: the collar stays, the head turns -----------------------------------------


@pytest.fixture(scope="module")
def suit(data_dir):
    """talk_b's first frame: a man in shirt and tie, and the engine's avatar of it."""
    from avatarlab.media import iter_frames

    frame = next(iter(iter_frames(data_dir / "video" / "talk_b.mp4")))[0]
    engine = WarpEngine(WarpOptions(blink_rate=0.0))
    return frame, engine, engine.prepare(frame)


def test_collar_stays_while_the_head_turns(suit):
    from avatarlab.face import face_mesh

    frame, _, avatar = suit
    mesh = avatar.faces[0].vertices
    chin, top = mesh[152], mesh[10]
    height = float(np.linalg.norm(chin - top))
    collar = int(np.ceil(chin[1] + 0.1 * height))
    turned = avatar.head.apply(frame, motion.HeadOffset(yaw=6.0, pitch=4.0, roll=4.0, dx=0.02))
    assert np.array_equal(turned[collar:], frame[collar:])  # no motion at all below
    found = face_mesh(turned)
    assert found is not None
    moved = found[:468, :2] - mesh[:468]
    assert np.linalg.norm(moved, axis=1).mean() > 3.0  # pixels: the face did move
    nose = moved[1] - moved[[234, 454]].mean(0)
    assert nose[0] > 1.0  # yaw: the nose moves further than the outline, to image right


def test_head_weight_has_no_step_beside_the_jaw(suit):
    """Where the jaw line climbs to the ears the weight must not jump between columns
    (it did: a 10 degree roll tore the cheek from the background)."""
    from avatarlab.engines.warp.engine import JAW_FADE

    _, _, avatar = suit
    mesh = avatar.faces[0].vertices
    band = JAW_FADE * float(np.linalg.norm(mesh[152] - mesh[10]))
    w = avatar.head.weight
    steepest = max(np.abs(np.diff(w, axis=0)).max(), np.abs(np.diff(w, axis=1)).max())
    assert steepest < 3.0 / band  # about a smoothstep over the band (1.5 / band); was 30


def test_render_with_head_and_jaw_motion_leaves_the_collar(suit, data_dir):
    from avatarlab.engines.base import Driver
    from avatarlab.speech import analyze_speech

    frame, engine, avatar = suit
    speech = analyze_speech(
        audio=data_dir / "audio" / "english_radio_8s.wav", fps=avatar.fps, method="acoustic"
    )
    short = Driver(speech=speech)
    still = WarpEngine(WarpOptions(head_motion=0.0, blink_rate=0.0))
    moving = WarpEngine(WarpOptions(head_motion=1.0, blink_rate=0.0))
    mesh = avatar.faces[0].vertices
    height = float(np.linalg.norm(mesh[152] - mesh[10]))
    collar = int(np.ceil(mesh[152, 1] + 0.1 * height))
    chin = slice(int(mesh[152, 1] - 0.05 * height), int(mesh[152, 1] + 0.02 * height))
    a = still.render(avatar, short)
    b = moving.render(avatar, short)
    changed = jaw = 0
    for _, x, y in zip(range(40), a, b, strict=False):
        # neither the jaw (the mouth's warp) nor the head (with brows and smile) moves it
        assert np.array_equal(x[collar:], frame[collar:])
        assert np.array_equal(y[collar:], frame[collar:])
        changed += int(not np.array_equal(x[:collar], y[:collar]))
        jaw += int(not np.array_equal(x[chin], frame[chin]))
    assert changed >= 35  # the head itself moves
    assert jaw >= 20  # and the chin with the jaw


# -- lips at rest ----------------------------------------------------------------------------


def test_a_portrait_caught_mid_word_rests_with_closed_lips(data_dir):
    from avatarlab.engines.warp.engine import MID_SPEECH_JAW, REST_JAW_MAX
    from avatarlab.media import iter_frames

    def avatar(clip: str):
        frame = next(iter(iter_frames(data_dir / "video" / clip)))[0]
        return WarpEngine().prepare(frame)

    wide = avatar("talk_c.mp4")  # first frame mid-vowel, lips wide apart
    assert wide.faces[0].rig.source_jaw_open > MID_SPEECH_JAW and wide.rest_jaw == 0.0
    parted = avatar("talk_b.mp4")  # lips slightly apart: the speaker's own rest
    assert 0.0 < parted.rest_jaw <= REST_JAW_MAX
