"""PocketSphinx: forced alignment, phone recognition and transcription on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.media import resample
from avatarlab.speech import (
    SILENCE,
    Phone,
    align_transcript,
    phone_visemes,
    recognize_phones,
    synthesize,
    transcribe,
)
from avatarlab.speech.align import normalize_transcript

from .conftest import RADIO_EXCERPT_S, RADIO_EXCERPT_TEXT

pytest.importorskip("pocketsphinx")


def _on_grid(times: list[float]) -> bool:
    return bool(np.allclose(np.asarray(times) * 100, np.round(np.asarray(times) * 100), atol=1e-6))


def _check_contiguous(phones: list[Phone], duration: float) -> None:
    assert phones[0].start <= 0.05 and abs(phones[-1].end - duration) <= 0.05
    for a, b in zip(phones[:-1], phones[1:], strict=True):
        assert b.start == pytest.approx(a.end) and b.end > b.start


def _frame_labels(phones: list[Phone], n: int) -> np.ndarray:
    labels = np.full(n, "", dtype=object)
    for p in phones:
        labels[round(p.start * 100) : round(p.end * 100)] = p.symbol
    return labels


def test_normalize_transcript() -> None:
    text = "Holidays are \u2018a\u2019 time, of well-being: Bob\u2019s 42!"
    assert normalize_transcript(text) == [
        "holidays", "are", "a", "time", "of", "well", "being", "bob's", "42",
    ]  # fmt: skip


def test_align_radio_excerpt(radio_audio: np.ndarray) -> None:
    audio = radio_audio[: int(RADIO_EXCERPT_S * 16000)]
    result = align_transcript(audio, RADIO_EXCERPT_TEXT)
    assert result.source == "pocketsphinx-align"
    assert [w.text for w in result.words] == normalize_transcript(RADIO_EXCERPT_TEXT)
    phones = result.phones
    _check_contiguous(phones, RADIO_EXCERPT_S)
    assert _on_grid([p.start for p in phones] + [p.end for p in phones])
    assert all(p.source == "pocketsphinx-align" for p in phones)
    # The phones spell the dictionary pronunciations: "time" = T AY M.
    symbols = [p.symbol for p in phones if p.symbol != SILENCE]
    assert "T AY M AH V S EH L AH B R EY T IH NG" in " ".join(symbols)
    # Speech fills the excerpt (it starts at once and runs to the pause at ~2.7 s).
    speech = sum(p.duration for p in phones if p.symbol != SILENCE)
    assert speech > 0.85 * 2.7
    words = {w.text: w for w in result.words}
    assert words["time"].start == pytest.approx(0.95, abs=0.1)
    assert words["ones"].end == pytest.approx(2.70, abs=0.1)


def test_alignment_matches_espeak_timing_and_pronounces_unknown_words() -> None:
    # espeak knows where it put each phone; the aligner must find the same places.
    utt = synthesize("Zxqvorp bought 42 maps in Bob's big market.")
    audio = resample(utt.audio, utt.sample_rate, 16000)
    result = align_transcript(audio, utt.text)
    assert [w.text for w in result.words][:3] == ["zxqvorp", "bought", "42"]

    def bilabial_starts(phones: list[Phone]) -> np.ndarray:
        return np.array([p.start for p in phones if phone_visemes(p.symbol, p.source) == ("PP",)])

    truth, found = bilabial_starts(utt.phones), bilabial_starts(result.phones)
    assert len(truth) == len(found) == 8  # zxqvorP Bought MaPs BoB(s) Big Market
    assert np.median(np.abs(truth - found)) < 0.04
    assert np.max(np.abs(truth - found)) < 0.08


def test_wrong_transcript_fails_cleanly_then_recovers(radio_audio: np.ndarray) -> None:
    audio = radio_audio[: int(RADIO_EXCERPT_S * 16000)]
    with pytest.raises(AvatarLabError, match="could not be aligned"):
        align_transcript(audio, RADIO_EXCERPT_TEXT + " and a great many other words besides")
    assert align_transcript(audio, RADIO_EXCERPT_TEXT).words[0].text == "holidays"
    with pytest.raises(OptionError, match="no words"):
        align_transcript(audio, " ,.! ")


def test_phone_recognition_agrees_with_alignment(radio_audio: np.ndarray) -> None:
    phones = recognize_phones(radio_audio)
    _check_contiguous(phones, 8.0)
    assert _on_grid([p.start for p in phones])
    assert all(p.source == "pocketsphinx-phones" for p in phones)
    reference = align_transcript(radio_audio[: int(RADIO_EXCERPT_S * 16000)], RADIO_EXCERPT_TEXT)
    n = int(RADIO_EXCERPT_S * 100)
    same = _frame_labels(phones, n) == _frame_labels(reference.phones, n)
    assert same.mean() > 0.5  # measured 0.6; chance is a few percent


def test_phones_cover_speech_and_silence(english_20s: np.ndarray) -> None:
    # english_60s.wav starts with 3 s of silence; then speech with short pauses.
    phones = recognize_phones(english_20s)
    labels = _frame_labels(phones, 2000)
    assert np.mean(labels[:280] == SILENCE) > 0.95
    assert np.mean(labels[320:2000] != SILENCE) > 0.8


def test_transcribe_excerpt(radio_audio: np.ndarray) -> None:
    result = transcribe(radio_audio[: int(RADIO_EXCERPT_S * 16000)])
    assert " ".join(normalize_transcript(RADIO_EXCERPT_TEXT)) == result.text
    assert result.words[0].start < 0.1 and result.words[-1].end == pytest.approx(2.7, abs=0.1)
    # The first-pass search alone (mouth timing) hears this clear sentence as well.
    fast = transcribe(radio_audio[: int(RADIO_EXCERPT_S * 16000)], fast=True)
    assert fast.text == result.text


@pytest.mark.parametrize(
    ("text", "voice", "rate"),
    [
        ("The juice of lemons makes fine punch.", "en-gb", 150),
        ("The box was thrown beside the parked truck.", "en-us", 150),
    ],
)
def test_synthesised_speech_padded_with_digital_silence_aligns(
    text: str, voice: str, rate: int
) -> None:
    # Both utterances failed to align before runs of exact zeros were dithered.
    speech = synthesize("  " + text, voice=voice, rate_wpm=rate)
    audio = resample(speech.audio, speech.sample_rate, 16000)
    pad = np.zeros(4000, np.float32)
    phones = align_transcript(np.concatenate([pad, audio, pad]), text).phones
    spoken = [p for p in phones if p.symbol != SILENCE]
    assert spoken and spoken[0].start >= 0.2 and spoken[-1].end <= 0.25 + len(audio) / 16000 + 0.1


def test_dither_touches_only_long_runs_of_exact_zeros() -> None:
    from avatarlab.speech.align import DIGITAL_SILENCE_RUN, _dither_digital_silence

    rng = np.random.default_rng(1)
    pcm = rng.integers(-3000, 3000, 2000).astype("<i2")
    pcm[100:110] = 0  # a short run (a recording's zero crossings): kept
    pcm[500 : 500 + DIGITAL_SILENCE_RUN + 40] = 0
    out = _dither_digital_silence(pcm)
    run = slice(500, 500 + DIGITAL_SILENCE_RUN + 40)
    outside = np.ones(len(pcm), bool)
    outside[run] = False
    assert np.array_equal(out[outside], pcm[outside])
    assert set(np.unique(out[run])) <= {-1, 0, 1} and np.count_nonzero(out[run]) > 50
    assert np.array_equal(out, _dither_digital_silence(pcm))
    recording = rng.integers(-3000, 3000, 2000).astype("<i2")
    assert _dither_digital_silence(recording) is recording
