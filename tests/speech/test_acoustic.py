"""Acoustic fallback: voice activity, features, and the streaming mouth."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.media import resample
from avatarlab.speech import (
    MouthTrack,
    StreamingMouth,
    acoustic_features,
    acoustic_track,
    mouth_track,
    synthesize,
)
from avatarlab.speech.features import FEATURE_RATE, LOOKAHEAD_S, speech_reference_db


def _padded(radio: np.ndarray, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Radio speech with ``seconds`` of faint noise before and after."""
    noise = np.random.default_rng(seed).normal(0, 1e-3, int(seconds * 16000)).astype(np.float32)
    return np.concatenate([noise, radio, noise[::-1]])


def test_silero_ships_and_loads_offline(radio_audio: np.ndarray) -> None:
    pytest.importorskip("silero_vad")
    feats = acoustic_features(radio_audio[:16000])
    assert feats.vad_backend == "silero"


@pytest.mark.parametrize("backend", ["silero", "energy"])
def test_vad_marks_leading_and_trailing_silence(radio_audio: np.ndarray, backend: str) -> None:
    if backend == "silero":
        pytest.importorskip("silero_vad")
    feats = acoustic_features(_padded(radio_audio), vad=backend)
    assert len(feats) == 1000  # 10 s at 100 Hz
    segments = feats.speech_segments()
    assert segments[0][0] == pytest.approx(1.0, abs=0.1)
    assert segments[-1][1] == pytest.approx(9.0, abs=0.2)
    assert np.mean(feats.vad[:90] < 0.5) > 0.95 and np.mean(feats.vad[-80:] < 0.5) > 0.95
    assert np.mean(feats.vad[110:880] > 0.5) > 0.9


def test_vad_on_real_recording(english_20s: np.ndarray) -> None:
    feats = acoustic_features(english_20s)
    first = feats.speech_segments()[0]
    assert first[0] == pytest.approx(3.05, abs=0.15)  # 3 s of room tone, then speech
    assert np.all(feats.vad[:250] < 0.5)


def test_features_follow_the_spectrum() -> None:
    t = np.arange(16000) / 16000
    low = (0.3 * np.sin(2 * np.pi * 400 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 900 * t) + 0.3 * np.sin(2 * np.pi * 2400 * t)).astype(
        np.float32
    )
    a, b = acoustic_features(low, vad="energy"), acoustic_features(high, vad="energy")
    mid = slice(20, 80)
    assert np.median(a.f1_hz[mid]) == pytest.approx(400, abs=20)
    assert np.median(b.f1_hz[mid]) == pytest.approx(900, abs=20)
    assert np.median(b.f2_hz[mid]) > 1500
    assert np.median(a.level_db[mid]) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.5)
    hiss = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    c = acoustic_features(hiss, vad="energy")
    assert np.median(c.frication[mid]) > 0.4 > np.median(a.frication[mid])
    assert np.median(c.flatness[mid]) > 0.5 > np.median(a.flatness[mid])


def test_acoustic_mouth_tracks_speech() -> None:
    # On espeak speech, the sound-only jaw follows the phone-based one.
    utt = synthesize("Mama made a banana pie, and we ate it all up at noon.")
    audio = resample(utt.audio, utt.sample_rate, 16000)
    acoustic = acoustic_track(audio, 16000, 25.0)
    phones = mouth_track(utt.phones, 25.0, utt.duration)
    n = min(len(acoustic), len(phones))
    assert abs(len(acoustic) - len(phones)) <= 1 and acoustic.source == "acoustic"
    r = np.corrcoef(acoustic.jaw_open[:n], phones.jaw_open[:n])[0, 1]
    assert r > 0.4
    silent = acoustic_track(np.zeros(16000, np.float32), 16000, 25.0)
    assert np.all(silent.jaw_open == 0) and np.all(silent.lip_closed == 1)


def test_streaming_equals_offline_with_bounded_latency(radio_audio: np.ndarray) -> None:
    audio = _padded(radio_audio, 0.5)[: 4 * 16000]
    offline = acoustic_track(audio, 16000, 25.0)
    reference = speech_reference_db(acoustic_features(audio))
    stream = StreamingMouth(16000, 25.0, reference_db=reference)
    parts, lateness = [], []
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(audio):
        step = int(rng.integers(40, 400))
        part = stream.push(audio[pos : pos + step])
        pos += step
        parts.append(part)
        lateness += list(pos / 16000 - part.times)
    parts.append(stream.flush())
    streamed = MouthTrack.concatenate(parts)
    np.testing.assert_allclose(streamed.params, offline.params, atol=1e-6)
    # Emitted as soon as complete: at most LOOKAHEAD_S (+ one chunk) after the frame time.
    assert max(lateness) <= LOOKAHEAD_S + 400 / 16000 + 1e-9
    assert abs(LOOKAHEAD_S - 0.062) < 1e-9
    assert stream.frames_emitted == len(offline) == 100


def test_streaming_resamples_other_rates(radio_audio: np.ndarray) -> None:
    audio16 = radio_audio[: 3 * 16000]
    audio48 = resample(audio16, 16000, 48000)
    ref = speech_reference_db(acoustic_features(audio16))
    stream = StreamingMouth(48000, 30.0, reference_db=ref)
    parts = [stream.push(audio48[i : i + 4800]) for i in range(0, len(audio48), 4800)]
    track = MouthTrack.concatenate([*parts, stream.flush()])
    offline = acoustic_track(audio16, 16000, 30.0)
    assert len(track) == len(offline) == 90
    assert np.corrcoef(track.jaw_open, offline.jaw_open)[0, 1] > 0.95
    assert FEATURE_RATE == 100


def test_streaming_buffers_stay_bounded() -> None:
    # Two minutes in 20 ms chunks: the stream keeps only a few blocks of state.
    rng = np.random.default_rng(2)
    stream = StreamingMouth(16000, 25.0, vad="energy")
    emitted = 0
    for _ in range(6000):
        emitted += len(stream.push(rng.normal(0, 0.05, 320).astype(np.float32)))
    assert emitted >= 120 * 25 - 3
    assert len(stream._audio) <= 2000 and len(stream._vad_probs) <= 4
    assert len(stream._raw) <= 10 and len(stream._smoothed) <= 10
