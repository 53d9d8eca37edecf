"""English speech -> timed phones with PocketSphinx 5 (models ship in the package).

Three uses of the same acoustic model (US English, 16 kHz, 10 ms frames):

- :func:`recognize_phones`: phone recognition (allphone search with the phone
  bigram ``en-us-phone.lm.bin``) when no transcript is known;
- :func:`align_transcript`: forced alignment of a known transcript: a word pass
  (``set_align_text``) then a phone pass (``set_alignment`` / ``get_alignment``);
  words missing from CMUdict are pronounced by espeak-ng's English rules;
- :func:`transcribe`: word recognition with the bundled English trigram model
  (``fast=True``: the first search pass only, about twice as fast, for mouth timing).

All times lie on the decoder's 10 ms frame grid. A decoder is slow to create, so
each kind is created once per process and used under its own lock. Its feature front
end keeps state from one utterance to the next (noise and cepstral estimates: the same
clip gave other phones after another clip), so it is reset before each utterance
(``reinit_feat``, about 1 ms): the same audio gives the same words and phones whatever
was decoded before, in one process or many.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.media import SPEECH_RATE, resample
from avatarlab.speech.phones import (
    ARPABET_FILLERS,
    SILENCE,
    Phone,
    espeak_to_arpabet,
    merge_silences,
)

#: PocketSphinx frames per second (``-frate``): every boundary is a multiple of 10 ms.
FRAME_RATE = 100
#: Shorter audio is not decoded (the recogniser needs a few frames of context).
MIN_AUDIO_S = 0.1
#: Search settings the PocketSphinx docs give for phone recognition.
_ALLPHONE_CONFIG = {"beam": 1e-20, "pbeam": 1e-20, "lw": 2.0}
#: Word recognition without the flat-lexicon and lattice passes: about half the time of
#: the full search, with more word errors but phone sequences as useful for mouth timing.
_FAST_ASR_CONFIG = {"fwdflat": False, "bestpath": False}


@dataclass(frozen=True)
class Word:
    """A recognised or aligned word with its span in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Recognition:
    """What a PocketSphinx pass found.

    Attributes:
        text: the word sequence (recognised, or the normalised transcript).
        words: timed words, fillers and silences removed.
        phones: timed ARPAbet phones covering the audio (``"SIL"`` for pauses);
            empty for :func:`transcribe`.
        source: ``"pocketsphinx-align"``, ``"pocketsphinx-phones"`` or ``"pocketsphinx-words"``.
    """

    text: str
    words: list[Word] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)
    source: str = "pocketsphinx-phones"


class _Decoders:
    """Lazily created decoders, one per kind, each with a lock."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {
            k: threading.Lock() for k in ("asr", "asr-fast", "phones", "align")
        }
        self._create = threading.Lock()

    def lock(self, kind: str) -> threading.Lock:
        return self._locks[kind]

    def discard(self, kind: str) -> None:
        """Drop a decoder left in a failed state; the next call makes a fresh one."""
        with self._create:
            self._made.pop(kind, None)

    def get(self, kind: str) -> Any:
        """The decoder of ``kind``; call with ``lock(kind)`` held."""
        with self._create:
            if kind not in self._made:
                self._made[kind] = _new_decoder(kind)
            return self._made[kind]


def _new_decoder(kind: str) -> Any:
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError as exc:
        raise AvatarLabError(
            "PocketSphinx is not installed: `pip install 'avatarlab[speech]'` "
            "for English phone timing"
        ) from exc
    common = {"samprate": SPEECH_RATE, "loglevel": "FATAL"}
    if kind == "asr":
        return Decoder(**common)
    if kind == "asr-fast":
        return Decoder(**_FAST_ASR_CONFIG, **common)
    if kind == "phones":
        lm = get_model_path("en-us/en-us-phone.lm.bin")
        return Decoder(allphone=lm, **_ALLPHONE_CONFIG, **common)
    # bestpath off: its lattice can give a phone fewer frames than HMM states, which
    # breaks the second (phone) alignment pass (cmusphinx/pocketsphinx#339, #500).
    return Decoder(lm=None, bestpath=False, **common)


_DECODERS = _Decoders()


def _pcm16(audio: np.ndarray, sample_rate: int) -> bytes:
    """float32 mono at ``sample_rate`` -> 16 kHz int16 little-endian bytes."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise OptionError(f"audio must be mono (N,), got shape {audio.shape}: average the channels")
    if sample_rate != SPEECH_RATE:
        audio = resample(audio, sample_rate, SPEECH_RATE)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    return _dither_digital_silence(pcm).tobytes()


DIGITAL_SILENCE_RUN = 160
"""Exact-zero runs at least this long (10 ms at 16 kHz) get a +-1 LSB dither: the
recogniser's log energy of pure zeros breaks alignment (synthesised speech padded with
zeros failed 11 of 40 espeak utterances, 1 with the dither); recordings have no such runs,
so their samples are passed unchanged."""


def _dither_digital_silence(pcm: np.ndarray) -> np.ndarray:
    """``pcm`` (int16) with a seeded +-1 dither over its runs of exact zeros (a copy)."""
    zero = pcm == 0
    if not zero.any():
        return pcm
    edges = np.flatnonzero(np.diff(np.concatenate(([0], zero.view(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2]
    long = (ends - starts) >= DIGITAL_SILENCE_RUN
    if not long.any():
        return pcm
    mask = np.zeros(len(pcm) + 1, np.int32)
    np.add.at(mask, starts[long], 1)
    np.add.at(mask, ends[long], -1)
    where = np.cumsum(mask[:-1]) > 0
    out = pcm.copy()
    noise = np.random.default_rng(0).integers(-1, 2, int(where.sum()), dtype=np.int16)
    out[where] = noise
    return out


def _decode(decoder: Any, pcm: bytes) -> None:
    """One utterance from a fresh front end (see the module doc)."""
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _base_word(word: str) -> str:
    """``"with(2)"`` (alternate pronunciation) -> ``"with"``."""
    return word.split("(", 1)[0]


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+")) or word in ARPABET_FILLERS


def _phone_symbol(name: str) -> str:
    return SILENCE if name in ARPABET_FILLERS else name


def recognize_phones(audio: np.ndarray, sample_rate: int = SPEECH_RATE) -> list[Phone]:
    """Recognise ARPAbet phones in English speech without a transcript.

    Args:
        audio: float32 mono ``(N,)`` in [-1, 1].
        sample_rate: Hz; resampled to 16 kHz when different.

    Returns:
        Phones (source ``"pocketsphinx-phones"``) covering the audio, boundaries on the
        10 ms grid; noise and silence are ``"SIL"``. Expect roughly 60-70 % phone
        accuracy on clean speech: good enough for mouth shapes, not for transcripts.
    """
    pcm = _pcm16(audio, sample_rate)
    duration = len(pcm) / 2 / SPEECH_RATE
    if duration < MIN_AUDIO_S:
        return [Phone(SILENCE, 0.0, duration, "pocketsphinx-phones")] if duration > 0 else []
    with _DECODERS.lock("phones"):
        decoder = _DECODERS.get("phones")
        _decode(decoder, pcm)
        segments = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
    phones = [
        Phone(_phone_symbol(w), s / FRAME_RATE, (e + 1) / FRAME_RATE, "pocketsphinx-phones")
        for w, s, e in segments
        if e >= s
    ]
    return merge_silences(phones)


def transcribe(
    audio: np.ndarray, sample_rate: int = SPEECH_RATE, fast: bool = False
) -> Recognition:
    """Recognise English words (bundled trigram LM), about 2-4x faster than real time.

    Args:
        audio: float32 mono ``(N,)`` in [-1, 1].
        sample_rate: Hz; resampled to 16 kHz when different.
        fast: first search pass only (about 2x faster, more word errors): enough to
            time a mouth (:func:`~avatarlab.speech.analyze_speech`), not for a transcript.

    Returns:
        A :class:`Recognition` with ``text`` and timed ``words`` (no phones).
    """
    pcm = _pcm16(audio, sample_rate)
    if len(pcm) / 2 / SPEECH_RATE < MIN_AUDIO_S:
        return Recognition("", [], [], "pocketsphinx-words")
    kind = "asr-fast" if fast else "asr"
    with _DECODERS.lock(kind):
        decoder = _DECODERS.get(kind)
        _decode(decoder, pcm)
        segments = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
    words = [
        Word(_base_word(w), s / FRAME_RATE, (e + 1) / FRAME_RATE)
        for w, s, e in segments
        if not _is_filler(w)
    ]
    return Recognition(" ".join(w.text for w in words), words, [], "pocketsphinx-words")


_WORD_CHARS = re.compile(r"[^a-z0-9']+")


def normalize_transcript(transcript: str) -> list[str]:
    """Lower-case words as CMUdict spells them: punctuation dropped, hyphens split."""
    text = transcript.lower().replace("\u2019", "'").replace("\u2018", "'")
    words = (w.strip("'") for w in _WORD_CHARS.split(text))
    return [w for w in words if w]


def _pronounce(words: list[str]) -> list[str | None]:
    """ARPAbet pronunciations of out-of-vocabulary words via espeak's English rules
    (None: nothing pronounceable); one espeak-ng load for all the words."""
    from avatarlab.speech.tts import texts_to_phonemes

    prons: list[str | None] = []
    for mnemonics in texts_to_phonemes(words, voice="en-us") if words else []:
        arpabet = [a for m in mnemonics for a in espeak_to_arpabet(m) if a != SILENCE]
        prons.append(" ".join(arpabet) if arpabet else None)
    return prons


def align_transcript(
    audio: np.ndarray, transcript: str, sample_rate: int = SPEECH_RATE
) -> Recognition:
    """Force-align a known English transcript to the audio.

    Args:
        audio: float32 mono ``(N,)`` in [-1, 1].
        transcript: the words spoken, in order (punctuation and case are ignored;
            numbers and names missing from CMUdict are pronounced by espeak-ng).
        sample_rate: Hz; resampled to 16 kHz when different.

    Returns:
        A :class:`Recognition` with timed words and ARPAbet phones (source
        ``"pocketsphinx-align"``), boundaries on the 10 ms grid; pauses are ``"SIL"``.

    Raises:
        OptionError: the transcript has no words, or a word cannot be pronounced.
        AvatarLabError: the transcript does not fit the audio (alignment failed).
    """
    words = normalize_transcript(transcript)
    if not words:
        raise OptionError("the transcript has no words: pass the words spoken, or leave it out")
    pcm = _pcm16(audio, sample_rate)
    if len(pcm) / 2 / SPEECH_RATE < MIN_AUDIO_S:
        raise AvatarLabError(f"the audio is too short to align (under {MIN_AUDIO_S} s)")
    with _DECODERS.lock("align"):
        decoder = _DECODERS.get("align")
        unknown = sorted(w for w in set(words) if decoder.lookup_word(w) is None)
        for w, pron in zip(unknown, _pronounce(unknown), strict=True):
            if pron is None:
                raise OptionError(f"cannot pronounce {w!r} in the transcript: spell it out")
            decoder.add_word(w, pron, True)
        try:
            decoder.set_align_text(" ".join(words))
            _decode(decoder, pcm)
            if decoder.hyp() is None:
                raise RuntimeError("no hypothesis")
            decoder.set_alignment()
            _decode(decoder, pcm)
            alignment = decoder.get_alignment()
            entries = [
                (w.name, w.start, w.duration, [(p.name, p.start, p.duration) for p in w])
                for w in alignment
            ]
        except RuntimeError as exc:
            _DECODERS.discard("align")
            raise AvatarLabError(
                "the transcript could not be aligned to the audio: check that it is the "
                "words actually spoken, in English, or leave it out to recognise phones"
            ) from exc
    timed = [
        Word(_base_word(name), s / FRAME_RATE, (s + d) / FRAME_RATE)
        for name, s, d, _ in entries
        if not _is_filler(name) and d > 0
    ]
    phones = [
        Phone(_phone_symbol(p), s / FRAME_RATE, (s + d) / FRAME_RATE, "pocketsphinx-align")
        for _, _, _, ps in entries
        for p, s, d in ps
        if d > 0
    ]
    return Recognition(" ".join(words), timed, merge_silences(phones), "pocketsphinx-align")
