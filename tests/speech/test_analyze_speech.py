"""analyze_speech: each input takes its path and says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.speech import analyze_speech, is_english
from avatarlab.speech.visemes import n_frames

from .conftest import RADIO_EXCERPT_S, RADIO_EXCERPT_TEXT


def test_text_takes_the_espeak_path() -> None:
    result = analyze_speech(text="Hello there, Bob.", fps=30.0)
    assert result.source == "espeak" and result.mouth.source == "espeak"
    assert result.sample_rate == 22050
    assert len(result.audio16k) == pytest.approx(len(result.audio) * 16000 / 22050, abs=2)
    assert len(result.mouth) == n_frames(len(result.audio) / 22050, 30.0)
    assert result.phones[0].source == "espeak"
    french = analyze_speech(text="Bonjour", language="fr")
    assert french.source == "espeak" and french.notes == ["voice fr"]


def test_audio_paths(radio_audio: np.ndarray) -> None:
    audio = radio_audio[: int(RADIO_EXCERPT_S * 16000)]
    aligned = analyze_speech(audio, 16000, transcript=RADIO_EXCERPT_TEXT)
    assert aligned.source == "pocketsphinx-align"
    assert len(aligned.mouth) == n_frames(RADIO_EXCERPT_S, 25.0) == 72
    heard = analyze_speech(audio, 16000)  # no transcript: recognised words, aligned
    assert heard.source == "pocketsphinx-words" and heard.notes[0].startswith("heard: ")
    assert all(p.source == "pocketsphinx-align" for p in heard.phones)
    recognised = analyze_speech(audio, 16000, method="phones")
    assert recognised.source == "pocketsphinx-phones"
    other = analyze_speech(audio, 16000, language="zh")
    assert other.source == "acoustic" and other.phones == [] and "acoustic" in other.notes[0]
    bad = analyze_speech(audio, 16000, transcript="completely different words entirely here now")
    assert bad.source == "pocketsphinx-phones" and "alignment failed" in bad.notes[0]
    # Every phone path agrees on when the mouth moves; the recognised words (this clear
    # excerpt is heard word for word) agree with the true transcript far better.
    r_words = np.corrcoef(aligned.mouth.jaw_open, heard.mouth.jaw_open)[0, 1]
    r_phones = np.corrcoef(aligned.mouth.jaw_open, recognised.mouth.jaw_open)[0, 1]
    assert r_words > 0.95 and 0.5 < r_phones < r_words


def test_audio_from_file_at_native_rate(data_dir: Path) -> None:
    result = analyze_speech(data_dir / "audio" / "chinese_news_8s.wav", language="zh-cn")
    assert result.source == "acoustic"
    assert result.sample_rate == 48000 and result.audio.ndim == 1
    assert len(result.audio16k) == pytest.approx(len(result.audio) / 3, abs=2)
    assert len(result.mouth) == n_frames(result.duration, 25.0)
    assert result.mouth.jaw_open.max() > 0.3


def test_bad_requests() -> None:
    with pytest.raises(OptionError, match="exactly one"):
        analyze_speech()
    with pytest.raises(OptionError, match="exactly one"):
        analyze_speech(np.zeros(100, np.float32), 16000, text="hi")
    with pytest.raises(OptionError, match="sample_rate"):
        analyze_speech(np.zeros(100, np.float32))
    with pytest.raises(OptionError, match="unknown speech method"):
        analyze_speech(text="hi", method="magic")
    with pytest.raises(OptionError, match="needs audio"):
        analyze_speech(text="hi", method="align")
    assert is_english("en_GB") and is_english("EN-us") and not is_english("fr")
