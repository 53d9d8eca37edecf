"""Viseme table and coarticulated mouth tracks: the renderer's contract."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.speech import (
    MOUTH_PARAMS,
    VISEMES,
    CoarticulationOptions,
    MouthTrack,
    Phone,
    mouth_frames,
    mouth_track,
    phone_visemes,
    synthesize,
)
from avatarlab.speech.phones import ARPABET_PHONES, ESPEAK_TO_ARPABET
from avatarlab.speech.visemes import (
    _STYLE_TABLES,
    ANTICIPATION_S,
    VISEME_TARGETS,
    VOWEL_VISEMES,
    _phone_frames,
    with_rest_pose,
)

#: Sentences dense in bilabials, rounded and open vowels.
SENTENCES = [
    "Peter Piper picked a peck of pickled peppers.",
    "My mother bought a bamboo umbrella for Bob.",
    "Who knew you would move to Boston in June?",
    "Avatars can speak any text in real time on a plain computer.",
]


def _arpabet(*spans: tuple[str, float, float]) -> list[Phone]:
    return [Phone(s, a, b, "pocketsphinx-align") for s, a, b in spans]


def test_every_phone_has_a_viseme() -> None:
    for phone in ARPABET_PHONES - {"HH"}:
        (first, *_rest) = phone_visemes(phone, "pocketsphinx-align")
        assert first in VISEMES
    assert phone_visemes("HH", "pocketsphinx-phones") == ()  # transparent
    for mnemonic in ESPEAK_TO_ARPABET:
        if mnemonic not in ("h", "?"):  # glottal: transparent
            assert phone_visemes(mnemonic, "espeak"), mnemonic
    assert set(VISEME_TARGETS) == set(VISEMES)


def test_symbols_map_by_source_and_family() -> None:
    # espeak "D" is the "th" of "the"; ARPAbet "D" is a d.
    assert phone_visemes("D", "espeak") == ("TH",)
    assert phone_visemes("D", "pocketsphinx-align") == ("DD",)
    assert phone_visemes("AY1", "pocketsphinx-align") == ("aa", "I")  # stress stripped, split
    assert phone_visemes("oU", "espeak") == ("O", "U")
    # Other languages: French nasal O~, front rounded y, German ich-laut C.
    assert phone_visemes("O~", "espeak") == ("O",)
    assert phone_visemes("y", "espeak") == ("U",)
    assert phone_visemes("C", "espeak") == ("CH",)
    assert phone_visemes("%%", "espeak") == ()


def test_table_ordering_jaw_cycles_with_syllables() -> None:
    jaw = {v: VISEME_TARGETS[v][0] for v in VISEMES}
    consonants = [v for v in VISEMES if v not in VOWEL_VISEMES]
    assert min(jaw[v] for v in VOWEL_VISEMES) > max(jaw[v] for v in consonants)
    spread = MOUTH_PARAMS.index("lip_spread")
    assert (
        VISEME_TARGETS["U"][spread] < VISEME_TARGETS["O"][spread] < 0 < VISEME_TARGETS["I"][spread]
    )


def _text_mode_figures(text: str) -> tuple[list[bool], float, np.ndarray, np.ndarray]:
    """Per-vowel "opening above the utterance median", the share of vowel frames with the jaw
    above its median, and the bilabial frames' lip closure and opening, for one sentence."""
    utt = synthesize(text)
    fps = 25.0
    track = mouth_track(utt.phones, fps, utt.duration)
    opening_median = np.median(track.opening)
    jaw_median = np.median(track.jaw_open)
    lead = CoarticulationOptions().resolved("espeak").anticipation_s  # the clear style's
    assert lead is not None
    vowel_phones, vowel_frames, bilabial_frames = [], [], []
    for p in utt.phones:
        visemes = phone_visemes(p.symbol, p.source)
        if visemes and visemes[0] in VOWEL_VISEMES:
            vowel_phones.append(bool(track.opening[int(p.center * fps)] > opening_median))
            vowel_frames += [k for k in _phone_frames(p.start - lead, p.end - lead, fps) if k >= 0]
        if visemes == ("PP",):
            bilabial_frames += list(_phone_frames(p.start, p.end, fps))
    jaw_share = float(np.mean(track.jaw_open[vowel_frames] > jaw_median))
    return (
        vowel_phones,
        jaw_share,
        track.lip_closed[bilabial_frames],
        track.opening[bilabial_frames],
    )


def test_text_mode_vowels_open_and_bilabials_close() -> None:
    """The issue's text-mode check, on the parameters the renderer will draw.

    The 80 % bar is applied to the vowels of all sentences together (50 vowels): one
    sentence has only 9-18, and a vowel whose opening sits exactly at the median (the
    unstressed "I" of "in") flips with espeak's run-to-run jitter of a few samples,
    moving a single sentence's share by 6-11 points. Each sentence must still reach 75 %.
    """
    vowels: list[bool] = []
    for text in SENTENCES:
        phones, jaw_share, closed, opening = _text_mode_figures(text)
        assert np.mean(phones) >= 0.75, text
        # Every frame of a vowel (shown ahead of its sound), not just its centre: tongue
        # consonants keep the jaw near their vowels' opening, so a few vowel edges dip under.
        assert jaw_share >= 0.75, text
        assert len(closed) >= 4 and np.all(closed == 1.0) and np.all(opening < 0.05), text
        vowels += phones
    assert np.mean(vowels) >= 0.8


def test_rounding_spread_and_open_vowels() -> None:
    phones = _arpabet(
        ("SIL", 0.0, 0.3), ("UW", 0.3, 0.6), ("SIL", 0.6, 0.9), ("AA", 0.9, 1.2),
        ("SIL", 1.2, 1.5), ("IY", 1.5, 1.8), ("SIL", 1.8, 2.2),
    )  # fmt: skip
    jaw, spread = MOUTH_PARAMS.index("jaw_open"), MOUTH_PARAMS.index("lip_spread")
    clear = CoarticulationOptions(style="clear")
    for options in (clear, None):  # the clear table, then the default for recognised phones
        params = mouth_track(phones, fps=100.0, options=options).params
        at = lambda t, params=params: params[int(t * 100)]  # noqa: E731
        assert at(0.45)[spread] < -0.8  # UW puckers
        assert at(1.65)[spread] > 0.6  # IY spreads
        assert at(0.1)[jaw] < 0.01 and at(0.1)[MOUTH_PARAMS.index("lip_closed")] > 0.99  # rest
        # AA drops the jaw (clear 0.9; conversational speech is hypoarticulated: 0.8).
        assert at(1.05)[jaw] > (0.85 if options is clear else 0.75)


def test_onset_and_offset_are_smooth() -> None:
    phones = _arpabet(("SIL", 0.0, 0.5), ("AA", 0.5, 0.8), ("SIL", 0.8, 1.5))
    jaw = mouth_track(phones, fps=1000.0).jaw_open
    peak = int(np.argmax(jaw))
    rise, fall = jaw[: peak + 1], jaw[peak:]
    # Monotonic up to the ~1e-5 step where a far pause's dominance reaches its cutoff.
    assert np.all(np.diff(rise) >= -1e-4) and np.all(np.diff(fall) <= 1e-4)
    # 10 % -> 90 % of the peak takes tens of milliseconds, not one step.
    t10, t90 = np.argmax(rise > 0.1 * jaw[peak]), np.argmax(rise > 0.9 * jaw[peak])
    assert 20 <= t90 - t10 <= 200
    assert np.max(np.abs(np.diff(jaw))) < 0.05  # per millisecond
    # The mouth starts opening before the vowel sounds (anticipation).
    assert jaw[480] > 0.1


def test_lingual_consonants_keep_neighbouring_rounding() -> None:
    # "stew": the lips round for UW already during S T.
    phones = _arpabet(("SIL", 0, 0.3), ("S", 0.3, 0.4), ("T", 0.4, 0.45), ("UW", 0.45, 0.7))
    spread = mouth_track(phones, fps=100.0).lip_spread
    alone = mouth_track(_arpabet(("SIL", 0, 0.3), ("S", 0.3, 0.4), ("T", 0.4, 0.45)), 100.0, 0.7)
    assert spread[42] < alone.lip_spread[42] - 0.3


def test_short_bilabial_still_closes_its_frame() -> None:
    # A 12 ms B between vowels falls inside one 40 ms frame without covering its midpoint.
    phones = _arpabet(("AA", 0.0, 0.205), ("B", 0.205, 0.217), ("AA", 0.217, 0.4))
    track = mouth_track(phones, fps=25.0, options=CoarticulationOptions(anticipation_s=0.0))
    assert track.lip_closed[5] == 1.0
    assert track.jaw_open[4] > 0.5 and track.jaw_open[6] > 0.5
    # Anticipation moves the approach, not the closure: the lips are shut while the B sounds.
    ahead = mouth_track(phones, fps=25.0)
    assert ahead.lip_closed[5] == 1.0


def test_the_mouth_runs_ahead_of_the_sound() -> None:
    utt = synthesize(SENTENCES[2])
    lead = CoarticulationOptions().resolved("espeak").anticipation_s
    assert lead is not None and 0.0 < lead <= 0.1
    free = CoarticulationOptions(bilabial_closure=False)  # the blend alone runs ahead
    ahead = mouth_track(utt.phones, 100.0, utt.duration, free)
    shifted = [Phone(p.symbol, p.start - lead, p.end - lead, p.source) for p in utt.phones]
    exact = mouth_track(
        shifted,
        100.0,
        utt.duration,
        CoarticulationOptions(anticipation_s=0.0, bilabial_closure=False),
    )
    np.testing.assert_allclose(ahead.params, exact.params, atol=1e-5)
    with pytest.raises(OptionError, match="anticipation_s"):
        CoarticulationOptions(anticipation_s=-0.01)


def test_tongue_consonants_keep_the_jaw_of_their_vowels() -> None:
    # "a t a" hardly closes the jaw; "a s a" (a sibilant) and "a b a" do.
    def jaw_at_consonant(symbol: str, style: str) -> float:
        phones = _arpabet(("AA", 0.0, 0.2), (symbol, 0.2, 0.28), ("AA", 0.28, 0.5))
        options = CoarticulationOptions(style=style, anticipation_s=0.02, timing_sd_s=0.0)  # type: ignore[arg-type]
        return float(mouth_track(phones, fps=100.0, options=options).jaw_open[24 - 2])

    clear = {c: jaw_at_consonant(c, "clear") for c in "TNKSB"}
    assert min(clear["T"], clear["N"], clear["K"]) > 0.4
    assert clear["S"] < 0.3 and clear["B"] < 0.1
    # Conversational speech parts the lips even more on tongue consonants; a B still shuts.
    talk = {c: jaw_at_consonant(c, "conversational") for c in "TNKSB"}
    assert all(talk[c] > clear[c] for c in "TNKS")
    assert talk["S"] < talk["T"] and talk["B"] < 0.1


def test_styles_resolve_by_source() -> None:
    auto = CoarticulationOptions()
    assert auto.resolved("espeak").style == "clear"
    assert auto.resolved("espeak").anticipation_s == ANTICIPATION_S["clear"]
    for source in ("pocketsphinx-words", "pocketsphinx-align", "pocketsphinx-phones"):
        talk = auto.resolved(source)
        assert talk.style == "conversational"
        assert talk.anticipation_s == ANTICIPATION_S["conversational"]
    # Explicit choices win over the source.
    fixed = CoarticulationOptions(style="clear", anticipation_s=0.05).resolved("pocketsphinx-words")
    assert (fixed.style, fixed.anticipation_s) == ("clear", 0.05)
    with pytest.raises(OptionError, match="style"):
        CoarticulationOptions(style="mumbled")  # type: ignore[arg-type]
    # The same recognised phones: conversational speech has rounded vowels narrower and
    # tongue consonants wider than the clear table; open vowels still open widest.
    clear_jaw, talk_jaw = (_STYLE_TABLES[s][0][:, 0] for s in ("clear", "conversational"))
    idx = {v: VISEMES.index(v) for v in VISEMES}
    assert talk_jaw[idx["U"]] < clear_jaw[idx["U"]] and talk_jaw[idx["O"]] < clear_jaw[idx["O"]]
    assert talk_jaw[idx["DD"]] > clear_jaw[idx["DD"]]
    consonants = [idx[v] for v in VISEMES if v not in VOWEL_VISEMES]
    assert min(talk_jaw[idx[v]] for v in ("aa", "E", "I")) > talk_jaw[consonants].max()
    assert talk_jaw[idx["U"]] < talk_jaw[idx["O"]] < talk_jaw[idx["I"]]


def test_rest_pose_parts_the_lips_in_pauses_only() -> None:
    phones = _arpabet(
        ("SIL", 0.0, 0.4), ("AA", 0.4, 0.6), ("B", 0.6, 0.7), ("AA", 0.7, 0.9), ("SIL", 0.9, 1.6),
    )  # fmt: skip
    track = mouth_track(phones, fps=25.0)
    rested = with_rest_pose(track, 0.2)
    assert with_rest_pose(track, 0.0) is track
    pause = [2, 30, 35]  # deep inside the two pauses
    np.testing.assert_allclose(rested.jaw_open[pause], 0.2, atol=0.02)
    assert np.all(rested.lip_closed[pause] < 0.05) and np.all(track.lip_closed[pause] > 0.95)
    assert np.all(rested.opening[pause] > 0.15)
    # The B's frames stay shut; the vowels hardly change.
    b_frames = list(_phone_frames(0.6, 0.7, 25.0))
    assert np.all(rested.lip_closed[b_frames] == 1.0)
    np.testing.assert_allclose(rested.jaw_open[12], track.jaw_open[12], atol=0.03)
    np.testing.assert_array_equal(rested.viseme_weights, track.viseme_weights)
    # Acoustic tracks (no visemes) rest by their lip closure.
    from avatarlab.speech import acoustic_track

    quiet = acoustic_track(np.zeros(16000, np.float32), 16000, 25.0)
    assert np.all(with_rest_pose(quiet, 0.2).opening > 0.15)


def test_chunks_equal_the_whole_track() -> None:
    utt = synthesize(SENTENCES[1])
    whole = mouth_track(utt.phones, 30.0, utt.duration)
    cuts = [0, 1, 7, 8, 40, 41, len(whole)]
    parts = [mouth_frames(utt.phones, 30.0, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    joined = MouthTrack.concatenate(parts)
    np.testing.assert_array_equal(joined.params, whole.params)
    np.testing.assert_array_equal(joined.viseme_weights, whole.viseme_weights)
    assert parts[3].start_frame == 8 and parts[3].times[0] == pytest.approx(8.5 / 30.0)


def test_track_shapes_and_ranges() -> None:
    utt = synthesize(SENTENCES[0])
    track = mouth_track(utt.phones, 25.0, utt.duration)
    assert track.params.shape == (int(np.ceil(utt.duration * 25.0)), len(MOUTH_PARAMS))
    assert track.params.dtype == np.float32 and track.source == "espeak"
    assert track.viseme_weights is not None
    np.testing.assert_allclose(track.viseme_weights.sum(axis=1), 1.0, atol=1e-5)
    lo = np.array([0, -1, 0, 0, 0])
    assert np.all(track.params >= lo - 1e-6) and np.all(track.params <= 1 + 1e-6)
    # Far from any phone the mouth rests.
    empty = mouth_track([], 25.0, 2.0, source="acoustic")
    assert len(empty) == 50 and np.all(empty.jaw_open == 0) and np.all(empty.lip_closed == 1)


def test_long_track_is_blockwise() -> None:
    # Five minutes of phones (12 per second): evaluated in blocks, memory stays small.
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.04, 0.12, 3600)
    ends = np.cumsum(durations)
    symbols = rng.choice(["AA", "B", "S", "IY", "T", "UW", "SIL"], len(ends))
    phones = [
        Phone(str(s), float(e - d), float(e), "pocketsphinx-phones")
        for s, e, d in zip(symbols, ends, durations, strict=True)
    ]
    track = mouth_track(phones, 25.0)
    assert len(track) == int(np.ceil(ends[-1] * 25.0 - 1e-6))
    closed = [k for p in phones if p.symbol == "B" for k in _phone_frames(p.start, p.end, 25.0)]
    assert np.all(track.lip_closed[closed] == 1.0)
    with pytest.raises(OptionError, match="plateau"):
        CoarticulationOptions(plateau=2.0)
