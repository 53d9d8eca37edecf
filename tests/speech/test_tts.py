"""espeak-ng through ctypes: struct layout, audio, phoneme timing, voices, locking."""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.speech import (
    SILENCE,
    analyze_speech,
    check_text,
    list_voices,
    synthesize,
    text_to_phonemes,
)
from avatarlab.speech.tts import EspeakEvent, _phones_from_events

SENTENCE = "The quick brown fox jumps over a lazy dog, and Bob met Mary."


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="LP64 layout")
def test_event_struct_matches_speak_lib_h() -> None:
    # speak_lib.h: six 4-byte ints/enums, a pointer at 24, then the 8-byte union at 32.
    assert ctypes.sizeof(EspeakEvent) == 40
    assert EspeakEvent.audio_position.offset == 16
    assert EspeakEvent.sample.offset == 20
    assert EspeakEvent.user_data.offset == 24
    assert EspeakEvent.id.offset == 32


def test_phones_from_events_merges_pauses_and_clips() -> None:
    events = [(10, "b"), (40, "0"), (150, "(en)"), (150, "b"), (200, "_:"), (300, "_"), (500, "_")]
    phones = _phones_from_events(events, duration=0.5)
    assert [p.symbol for p in phones] == ["b", "0", "b", SILENCE]
    assert phones[0].start == pytest.approx(0.010)
    assert phones[1].end == pytest.approx(0.150)
    assert (phones[-1].start, phones[-1].end) == (pytest.approx(0.2), pytest.approx(0.5))


def test_synthesize_sentence_audio_and_timing() -> None:
    utt = synthesize(SENTENCE)
    assert utt.sample_rate == 22050
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    # 12 words at espeak's 175 wpm, plus a comma pause: about 4 s.
    assert 2.5 < utt.duration < 6.0
    assert 0.05 < np.abs(utt.audio).max() <= 1.0
    starts = np.array([p.start for p in utt.phones])
    ends = np.array([p.end for p in utt.phones])
    assert np.all(ends > starts)
    assert np.all(np.diff(starts) > 0)
    assert np.all(starts[1:] >= ends[:-1] - 1e-9)  # no overlap
    assert starts[0] < 0.05 and ends[-1] == pytest.approx(utt.duration)
    symbols = [p.symbol for p in utt.phones]
    # "Bob met Mary": b 0 b m E t m e@ r i (espeak en-us mnemonics).
    joined = " ".join(symbols)
    assert "b 0 b m E t m e@ r i" in joined
    assert all(p.source == "espeak" for p in utt.phones)
    # Phones carry the sound: speech phones are far louder than the audio's quietest part.
    sr = utt.sample_rate
    loud = [
        np.sqrt(np.mean(utt.audio[int(p.start * sr) : int(p.end * sr)] ** 2))
        for p in utt.phones
        if p.symbol in ("0", "aU", "eI", "oU") and p.duration > 0.05
    ]
    assert min(loud) > 0.02


def test_rate_changes_duration() -> None:
    slow = synthesize("Speaking slowly and then quickly.", rate_wpm=120)
    fast = synthesize("Speaking slowly and then quickly.", rate_wpm=300)
    assert fast.duration < 0.6 * slow.duration


def test_options_are_validated() -> None:
    with pytest.raises(OptionError, match="unknown espeak voice 'xx-nope'.*en-us"):
        synthesize("hello", voice="xx-nope")
    with pytest.raises(OptionError, match="80..450"):
        synthesize("hello", rate_wpm=1000)


@pytest.mark.parametrize("text", ["", " ", "\n\t", "...", "?!", "\u2014 \u00bf?", "()[]{}"])
def test_text_without_words_is_refused_before_synthesis(text: str) -> None:
    # Used to give a silent clip a frame long (the CLI wrote a 1-frame video).
    with pytest.raises(OptionError, match="^the text has no words to speak") as info:
        synthesize(text)
    assert "\n" not in str(info.value)
    with pytest.raises(OptionError, match="no words to speak"):
        analyze_speech(text=text)
    assert check_text("Hi?!") == "Hi?!" and check_text("42") == "42"
    assert check_text("\u4f60\u597d") == "\u4f60\u597d"  # any script's letters


def test_other_languages_and_voices() -> None:
    languages = {v.language for v in list_voices()}
    assert {"en-us", "fr-fr", "de"} <= languages or {"en-us", "fr", "de"} <= languages
    utt = synthesize("Bonjour tout le monde", voice="fr")
    assert [p.symbol for p in utt.phones][:3] == ["b", "O~", "Z"]
    # Listed language codes and names work too, and language switches are not phones.
    british = synthesize("hello there", voice="English (Great Britain)")
    assert [p.symbol for p in synthesize("hello there", voice="en-gb").phones] == [
        p.symbol for p in british.phones
    ]
    assert all(not p.symbol.startswith("(") for p in synthesize("hello", voice="fr-fr").phones)
    assert text_to_phonemes("hello world", voice="en-us")[:4] == ["h", "@", "l", "'oU"]


def test_concurrent_calls_are_serialised() -> None:
    texts = ["One two three.", "Four five six seven.", "Eight nine.", "Ten eleven twelve."]
    expected = [synthesize(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(synthesize, texts * 2))
    for i, utt in enumerate(got):
        ref = expected[i % len(texts)]
        assert utt.text == ref.text and utt.phones == ref.phones
        np.testing.assert_array_equal(utt.audio, ref.audio)
