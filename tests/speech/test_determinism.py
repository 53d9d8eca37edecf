"""Same inputs, same output, in one process (issue 17.7).

espeak-ng's wave generator carried its pitch-flutter phase from one utterance to the
next (the same text came out a few hundred samples longer or shorter on every call),
and the process-wide PocketSphinx decoders carried their front-end state (the same
clip gave other phones after another clip had been decoded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.speech import analyze_speech, recognize_phones, synthesize

from .conftest import RADIO_EXCERPT_S

TEXT = "The quick brown fox jumps over a lazy dog, and Bob met Mary."


def test_synthesis_repeats_sample_for_sample() -> None:
    first, *again = (synthesize(TEXT) for _ in range(3))
    assert len(first.audio) > 22050
    for utt in again:
        np.testing.assert_array_equal(utt.audio, first.audio)
        assert utt.phones == first.phones
    # A breathy variant mixes in libc rand() noise: seeded before every synthesis.
    whisper = [synthesize("Bob met Mary.", voice="en-us+whisper").audio for _ in range(2)]
    np.testing.assert_array_equal(whisper[0], whisper[1])


def test_text_analysis_repeats() -> None:
    a, b = (analyze_speech(text="Hello there, Bob.") for _ in range(2))
    np.testing.assert_array_equal(a.audio16k, b.audio16k)
    np.testing.assert_array_equal(a.mouth.params, b.mouth.params)
    assert a.phones == b.phones


def test_audio_analysis_does_not_depend_on_what_came_before(
    radio_audio: np.ndarray, english_20s: np.ndarray
) -> None:
    # Before the fix, clip A analysed again after clip B gave other words, phones and
    # mouth frames (A's first sentence, B the radio's).
    clip_a = english_20s[3 * 16000 : 9 * 16000]
    clip_b = radio_audio[: int(RADIO_EXCERPT_S * 16000)]
    first = analyze_speech(clip_a, 16000)
    phones_a = recognize_phones(clip_a)
    analyze_speech(clip_b, 16000)
    recognize_phones(clip_b)
    again = analyze_speech(clip_a, 16000)
    assert again.notes == first.notes and again.phones == first.phones
    np.testing.assert_array_equal(again.mouth.params, first.mouth.params)
    assert recognize_phones(clip_a) == phones_a


@pytest.mark.slow
def test_speak_repeats_in_one_process(tmp_path: Path, data_dir: Path) -> None:
    import avatarlab
    from avatarlab.media import read_video

    portrait = data_dir / "image" / "woman_photo.jpg"
    videos = []
    for i in range(3):
        out = tmp_path / f"say{i}.mp4"
        avatarlab.speak(portrait, text="Hello Bob.", out=out, engine_options={"seed": 1})
        videos.append(read_video(out).frames)
    assert len(videos[0]) > 10
    for frames in videos[1:]:
        np.testing.assert_array_equal(frames, videos[0])
