"""No voice, no mouth motion (issue 17.4).

On digital silence PocketSphinx "heard" a word ("dog", "and", "i'm") and the mouth
opened: 76 of 125 frames on 5 s of zeros. The phone paths now run only where the
voice-activity detector hears speech.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from avatarlab.speech import analyze_speech
from avatarlab.speech.features import speech_spans

#: A frame counts as open when the jaw is past the bilabial closure (0.04).
OPEN_JAW = 0.05


def _open_frames(audio: np.ndarray, **kw: object) -> int:
    return int(np.sum(analyze_speech(audio, 16000, **kw).mouth.jaw_open > OPEN_JAW))  # type: ignore[arg-type]


def _noise(seconds: float, dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * 16000)) * 10 ** (dbfs / 20)).astype(np.float32)


@pytest.mark.parametrize("method", ["auto", "phones", "acoustic"])
def test_five_seconds_of_silence_keep_the_mouth_shut(method: str) -> None:
    zeros = np.zeros(5 * 16000, np.float32)
    result = analyze_speech(zeros, 16000, method=method)
    assert len(result.mouth) == 125
    assert result.mouth.jaw_open.max() <= OPEN_JAW
    assert _open_frames(_noise(5.0, -80.0), method=method) == 0
    if method != "acoustic":
        assert result.notes[-1] == "no voice activity: the mouth stays at rest"
        assert [p.symbol for p in result.phones] == ["SIL"]


def test_a_transcript_over_silence_stays_shut() -> None:
    result = analyze_speech(np.zeros(3 * 16000, np.float32), 16000, transcript="a dog and a cat")
    assert result.source == "pocketsphinx-align" and result.mouth.jaw_open.max() <= OPEN_JAW


def test_speech_still_opens_the_mouth_and_its_silent_tail_rests(radio_audio: np.ndarray) -> None:
    padded = np.concatenate([radio_audio, np.zeros(3 * 16000, np.float32)])
    result = analyze_speech(padded, 16000)
    assert result.source == "pocketsphinx-words" and len(result.mouth) == 275
    assert np.mean(result.mouth.jaw_open[:200] > OPEN_JAW) > 0.4  # the 8 s of speech
    # The voice ends at 8 s; the VAD margin and coarticulation settle within 0.4 s.
    assert result.mouth.jaw_open[210:].max() <= OPEN_JAW
    assert all(p.symbol == "SIL" for p in result.phones if p.start > 8.3)


def test_speech_spans_cover_speech_only(radio_audio: np.ndarray) -> None:
    padded = np.concatenate([np.zeros(16000, np.float32), radio_audio, np.zeros(16000, np.float32)])
    spans = speech_spans(padded)
    assert spans and 0.8 <= spans[0][0] <= 1.1 and 8.8 <= spans[-1][1] <= 9.2
    assert speech_spans(np.zeros(16000, np.float32)) == []
    assert speech_spans(np.zeros(0, np.float32)) == []


def test_a_minute_of_silence_is_fast_and_shut() -> None:
    start = time.perf_counter()
    result = analyze_speech(np.zeros(60 * 16000, np.float32), 16000)
    elapsed = time.perf_counter() - start
    assert len(result.mouth) == 1500 and result.mouth.jaw_open.max() <= OPEN_JAW
    assert elapsed < 20.0, f"{elapsed:.1f} s for 60 s of silence"
