"""Text to speech with phoneme timing, through libespeak-ng (ctypes).

espeak-ng runs in synchronous mode with phoneme events enabled: ``espeak_Synth``
calls back with int16 PCM blocks (22050 Hz) and an event list; each
``espeakEVENT_PHONEME`` carries the phoneme's mnemonic (``id.string``) and its start
in the output (``audio_position``, ms). A phone ends where the next phoneme event (or
the end of the audio) begins.

libespeak keeps global state (voice, rate, callback), so every call runs under one
process-wide lock; concurrent callers simply queue. Its wave generator also carries
state from one utterance to the next that no API resets (the pitch-flutter phase, a
static inside ``AdvanceParameters``, and the cycle counter of the voice's roughness),
so the same text came out a few hundred samples longer or shorter on every call. Each
call therefore loads a fresh copy of the library (``dlopen``, initialise, speak,
``espeak_Terminate``, ``dlclose``: about 20 ms), and seeds libc's ``rand`` (breathy
voices mix in noise from it): same text and voice, same samples, in one process or many.

Ctrl-C: a Python exception cannot cross the C callback (ctypes prints "Exception
ignored" and espeak goes on), so while espeak runs in the main thread, SIGINT and
SIGTERM only set a flag; the callback then returns 1, which stops synthesis at once,
and the signal is delivered again to the caller's own handler once espeak returns
(by default a ``KeyboardInterrupt``).
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import ctypes.util
import functools
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.speech.phones import ESPEAK_TO_ARPABET, SILENCE, Phone

#: Shared-object name of the Debian/Ubuntu ``libespeak-ng1`` package.
ESPEAK_LIBRARY = "libespeak-ng.so.1"
DEFAULT_VOICE = "en-us"
#: Voices named in the error message for an unknown voice, when installed.
_EXAMPLE_LANGUAGES = ("en-us", "en-gb", "fr-fr", "de", "es", "it", "pt", "ru", "cmn", "hi", "ar")
#: Speaking-rate limits and default of espeak (words per minute).
RATE_MIN_WPM, RATE_MAX_WPM, RATE_DEFAULT_WPM = 80, 450, 175
#: Limits of espeak's base pitch and pitch range (0..100; 50 is each voice's own).
PITCH_MIN, PITCH_MAX = 0, 100
#: Prefix of Piper voice ids (``"piper:NAME"`` or ``"piper:/path/voice.onnx"``).
PIPER_PREFIX = "piper:"
_PIPER: Any = None  # avatarlab.speech.piper.synthesize_piper, set when that module loads


def use_piper(synthesize_piper: Any) -> None:
    """Let :func:`synthesize` speak ``piper:`` voices with ``synthesize_piper`` (the Piper
    module calls this as it loads, so this module never imports it)."""
    global _PIPER
    _PIPER = synthesize_piper


# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_EE_OK = 0
#: libc's initial ``rand`` seed, set before each synthesis.
_RAND_SEED = 1
#: Signals that stop a synthesis running in the main thread.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _EventId(ctypes.Union):
    """``union id`` of ``espeak_EVENT``: a number, a name pointer, or an 8-byte mnemonic."""

    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (40 bytes on LP64: ``id`` at offset 32)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent)
)


@dataclass(frozen=True)
class Voice:
    """An installed espeak-ng voice: ``name`` (human), ``language`` code, file ``identifier``,
    ``gender`` (``"male"``, ``"female"`` or ``""``)."""

    name: str
    language: str
    identifier: str
    gender: str = ""


#: espeak_VOICE.gender codes.
_GENDERS = {1: "male", 2: "female"}


@dataclass(frozen=True, eq=False)
class Utterance:
    """Synthesised speech and its phone timing.

    Attributes:
        audio: float32 mono in [-1, 1], shape ``(S,)``, at ``sample_rate``.
        sample_rate: Hz (22050 for espeak-ng; a Piper voice's own, 16000 or 22050).
        phones: timed phones (start/end in seconds, in time order, within
            ``[0, duration]``; pauses are ``"SIL"``), each with its own ``source``:
            espeak mnemonics (``"espeak"``); for Piper, ARPAbet phones from forced
            alignment (``"pocketsphinx-align"``, else ``"pocketsphinx-phones"``), or
            empty where none could be found (non-English voice, ``with_phones=False``).
        text: the text spoken.
        voice: the voice id used.
        source: the engine that spoke: ``"espeak"`` or ``"piper"``.
    """

    audio: np.ndarray
    sample_rate: int
    phones: list[Phone]
    text: str
    voice: str
    source: str = field(default="espeak")

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sample_rate


@dataclass
class _Job:
    """What the synthesis callback collects; a noted signal or an ``error`` stops it."""

    pcm: list[np.ndarray] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)  # (ms, mnemonic)
    end_ms: int = 0
    signals: list[int] = field(default_factory=list)  # signals received while speaking
    error: BaseException | None = None


def _collect(job: _Job, wav: Any, n_samples: int, events: Any) -> None:
    if wav and n_samples > 0:
        job.pcm.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        event = events[i]
        if event.type == _EVENT_PHONEME:
            mnemonic = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
            job.events.append((int(event.audio_position), mnemonic))
        elif event.type in (_EVENT_END, _EVENT_MSG_TERMINATED):
            job.end_ms = max(job.end_ms, int(event.audio_position))
        i += 1


def _on_synth(wav: Any, n_samples: int, events: Any) -> int:
    """espeak's synthesis callback: 0 = go on, 1 = stop. Never raises (see the module doc)."""
    job = _JOB
    if job is None or job.signals or job.error is not None:
        return 1
    try:
        _collect(job, wav, n_samples, events)
    except BaseException as exc:  # noqa: BLE001 - re-raised by synthesize() after espeak returns
        job.error = exc
        return 1
    return 0


#: The C callback, alive as long as any loaded copy of the library may call it.
_CALLBACK = _SynthCallback(_on_synth)
#: The job the callback fills; set and cleared under ``_LOCK``.
_JOB: _Job | None = None


@functools.cache
def _library_name() -> str:
    return ctypes.util.find_library("espeak-ng") or ESPEAK_LIBRARY


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of the functions used."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_TextToPhonemes.argtypes = [
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p


def _open_library() -> ctypes.CDLL:
    try:
        return ctypes.CDLL(_library_name())
    except OSError:
        try:
            return ctypes.CDLL(ESPEAK_LIBRARY)
        except OSError as exc:
            raise AvatarLabError(
                "libespeak-ng is not installed: install it (Debian/Ubuntu: "
                "`apt-get install espeak-ng`) to speak text"
            ) from exc


class _Espeak:
    """A freshly loaded, initialised libespeak-ng; use under ``_LOCK`` within :func:`_espeak`."""

    def __init__(self, lib: ctypes.CDLL, sample_rate: int) -> None:
        self.lib = lib
        self.sample_rate = sample_rate

    def list_voices(self, language: str | None = None) -> list[Voice]:
        """Every voice, or those for ``language`` (``"variant"``: the voice variants)."""
        spec = _Voice(languages=language.encode("utf-8")) if language else None
        table = self.lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
        voices: list[Voice] = []
        i = 0
        while table[i]:
            v = table[i].contents
            # ``languages`` is a priority byte then a zero-terminated name (first language).
            languages = (v.languages or b"\0")[1:]
            voices.append(
                Voice(
                    name=(v.name or b"").decode("utf-8", "replace").strip(),
                    language=languages.decode("utf-8", "replace"),
                    identifier=(v.identifier or b"").decode("utf-8", "replace"),
                    gender=_GENDERS.get(v.gender, ""),
                )
            )
            i += 1
        return voices

    def set_voice(self, voice: str) -> None:
        # espeak matches file names ("en", "gmw/en-US"); also accept listed language codes
        # ("en-gb", "fr-fr") and voice names ("English (Great Britain)"), each with an
        # optional "+variant" ("en-us+f3"; espeak itself ignores an unknown variant).
        voices = _voices(self)
        base, plus, variant = voice.partition("+")
        suffix = ""
        if plus:
            variants = {v.identifier.removeprefix("!v/").lower(): v for v in _variants(self)}
            found = variants.get(variant.strip().lower())
            if found is None:
                known: list[str] = [k for k in ("f1", "f3", "m1", "m3", "whisper") if k in variants]
                raise OptionError(
                    f"unknown espeak voice variant {variant!r} in {voice!r}: use one such as "
                    f"{', '.join(known)} ({len(variants)} installed: see "
                    "avatarlab.speech.espeak_variants())"
                )
            suffix = "+" + found.identifier.removeprefix("!v/")
        wanted = base.strip().lower()
        candidates = [base.strip() + suffix] + [
            v.identifier + suffix for v in voices if wanted in (v.language.lower(), v.name.lower())
        ]
        if not any(
            c and self.lib.espeak_SetVoiceByName(c.encode("utf-8")) == _EE_OK for c in candidates
        ):
            languages = {v.language for v in voices}
            examples = [c for c in _EXAMPLE_LANGUAGES if c in languages] or sorted(languages)[:12]
            raise OptionError(
                f"unknown espeak voice {voice!r}: use a language code such as "
                f"{', '.join(examples)} ({len(languages)} installed: see "
                "avatarlab.speech.list_voices() or `espeak-ng --voices`)"
            )

    def set_rate(self, rate_wpm: int) -> None:
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)

    def set_pitch(self, pitch: int | None, pitch_range: int | None) -> None:
        """Base pitch and pitch range (0..100); ``None`` keeps the voice's own."""
        if pitch is not None:
            self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        if pitch_range is not None:
            self.lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)

    def synth(self, text: str, job: _Job) -> None:
        """Speak ``text`` into ``job``; raise what stopped it (a signal, a callback error)."""
        global _JOB
        data = text.encode("utf-8") + b"\0"
        _libc().srand(_RAND_SEED)
        _JOB = job
        try:
            status = self.lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            _JOB = None
        if job.error is not None:
            raise job.error
        if status != _EE_OK and not job.signals:
            raise AvatarLabError(f"espeak-ng failed to synthesise the text (error {status})")

    def text_to_phonemes(self, text: str) -> list[str]:
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        mode = ord(" ") << 8  # ASCII mnemonics separated by spaces
        out: list[str] = []
        while pointer.value:
            chunk = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, mode)
            out.extend((chunk or b"").decode("utf-8", "replace").split())
        return out


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand.restype = None
    return libc


_LOCK = threading.Lock()
_VOICES: list[Voice] | None = None


_VARIANTS: list[Voice] | None = None


def _voices(engine: _Espeak) -> list[Voice]:
    """The installed voices (listed once per process)."""
    global _VOICES
    if _VOICES is None:
        _VOICES = engine.list_voices()
    return _VOICES


def _variants(engine: _Espeak) -> list[Voice]:
    """The installed voice variants (listed once per process)."""
    global _VARIANTS
    if _VARIANTS is None:
        _VARIANTS = engine.list_voices("variant")
    return _VARIANTS


@contextlib.contextmanager
def _signals_held(job: _Job) -> Iterator[None]:
    """In the main thread, turn SIGINT/SIGTERM into a note on ``job`` (which stops espeak),
    then deliver them to the caller's handlers on the way out."""
    held: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def note(signum: int, frame: FrameType | None) -> None:
            job.signals.append(signum)

        for sig in _STOP_SIGNALS:
            if callable(signal.getsignal(sig)):
                held[sig] = signal.signal(sig, note)
    try:
        yield
    finally:
        for held_sig, handler in held.items():
            signal.signal(held_sig, handler)
        # Delivered even when the body raised (espeak stopped by the note fails the
        # call): the interrupt wins over that error, as it would without the hold.
        for signum in dict.fromkeys(job.signals):
            signal.raise_signal(signum)
        if job.signals:  # the caller's handler returned: the speech is still cut short
            raise KeyboardInterrupt


@contextlib.contextmanager
def _espeak(job: _Job | None = None) -> Iterator[_Espeak]:
    """A fresh copy of libespeak-ng for one call (see the module doc); hold ``_LOCK``.

    Signals are held from load to unload, so an interrupt never leaves a copy loaded.
    """
    with _signals_held(job if job is not None else _Job()):
        lib = _open_library()
        try:
            _declare(lib)
            rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS
            )
            if rate <= 0:
                raise AvatarLabError(
                    "espeak-ng failed to initialise (its data folder espeak-ng-data was not "
                    "found): reinstall espeak-ng"
                )
            try:
                lib.espeak_SetSynthCallback(_CALLBACK)
                yield _Espeak(lib, int(rate))
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)


def list_voices() -> list[Voice]:
    """The espeak-ng voices installed on this machine."""
    with _LOCK, _espeak() as engine:
        return list(_voices(engine))


def list_variants() -> list[Voice]:
    """espeak-ng's voice variants (identifier ``"!v/f3"``): ``synthesize(voice="en-us+f3")``
    speaks a voice with one."""
    with _LOCK, _espeak() as engine:
        return list(_variants(engine))


def _phones_from_events(events: list[tuple[int, str]], duration: float) -> list[Phone]:
    """Turn phoneme-start events (ms, mnemonic) into phones ending at the next start.

    Language-switch markers such as ``(en)`` (a French voice reading an English
    word) are not sounds and are dropped.
    """
    events = [(ms, m) for ms, m in events if m and not m.startswith("(")]
    starts = [min(ms / 1000.0, duration) for ms, _ in events] + [duration]
    phones: list[Phone] = []
    for (_, mnemonic), start, end in zip(events, starts[:-1], starts[1:], strict=True):
        if end <= start:
            continue
        symbol = SILENCE if ESPEAK_TO_ARPABET.get(mnemonic) == (SILENCE,) else mnemonic
        if phones and symbol == SILENCE and phones[-1].symbol == SILENCE:
            phones[-1] = Phone(SILENCE, phones[-1].start, end, "espeak")
        else:
            phones.append(Phone(symbol, start, end, "espeak"))
    return phones


def check_text(text: str) -> str:
    """``text`` if it has something to say (a letter or a digit), else :class:`OptionError`.

    Empty, blank and punctuation-only texts ("...", "?!") would give a silent clip a
    frame long; callers (a server, a batch) can check before queueing work.
    """
    if not any(ch.isalnum() for ch in text or ""):
        raise OptionError("the text has no words to speak: pass some words")
    return text


def check_rate(rate_wpm: float | None) -> int:
    """The speaking rate in words per minute (``None``: espeak's 175), or :class:`OptionError`
    outside 80..450."""
    if rate_wpm is None:
        return RATE_DEFAULT_WPM
    if not RATE_MIN_WPM <= rate_wpm <= RATE_MAX_WPM:
        raise OptionError(
            f"speaking rate {rate_wpm} wpm is out of range: use {RATE_MIN_WPM}..{RATE_MAX_WPM}"
        )
    return round(rate_wpm)


def check_pitch(value: float | None, what: str = "pitch") -> int | None:
    """An espeak pitch or pitch range (0..100, ``None`` = the voice's own), or :class:`OptionError`."""
    if value is None:
        return None
    if not PITCH_MIN <= value <= PITCH_MAX:
        raise OptionError(
            f"{what} {value} is out of range: use {PITCH_MIN}..{PITCH_MAX} (50 = normal)"
        )
    return round(value)


def synthesize(
    text: str,
    voice: str = DEFAULT_VOICE,
    rate_wpm: int | None = None,
    pitch: int | None = None,
    pitch_range: int | None = None,
    *,
    with_phones: bool = True,
) -> Utterance:
    """Speak ``text`` and return the audio with its phone timing.

    One entry for every voice: espeak-ng voices by name or language code, Piper neural
    voices by ``"piper:NAME"`` (added with :func:`~avatarlab.speech.piper.add_piper_voice`)
    or ``"piper:/path/to/voice.onnx"``; :func:`~avatarlab.speech.voices.voice_catalog`
    lists the ids.

    Args:
        text: UTF-8 text in the voice's language (plain text, no SSML).
        voice: an espeak voice name, language code or voice file (``"en-us"``, ``"fr"``,
            ``"gmw/en-US"``, ``"en-us+f3"`` with a variant), or a Piper voice id.
        rate_wpm: speaking rate in words per minute (80..450); ``None`` = espeak's 175
            (a Piper voice's own pace).
        pitch: espeak base pitch, 0..100; ``None`` (or 50) = the voice's own.
        pitch_range: espeak pitch variation (intonation), 0..100: 0 is a monotone;
            ``None`` (or 50) = the voice's own. Piper voices take neither.
        with_phones: Piper only: find phone timing (English: forced alignment, about
            0.1 s CPU per sentence); ``False`` returns audio only, as a player needs.

    Returns:
        An :class:`Utterance`: float32 audio (espeak: 22050 Hz) and timed phones
        (espeak mnemonics, or ARPAbet from alignment for Piper; see :mod:`.piper`).

    Raises:
        OptionError: text without a letter or digit (empty, blank, punctuation only),
            unknown voice, rate, pitch or range out of range, Piper not installed.
        MissingWeightsError: a Piper voice file or its ``.onnx.json`` is missing.
        KeyboardInterrupt: Ctrl-C (or SIGTERM) while speaking espeak, within milliseconds.
    """
    check_text(text)
    rate = check_rate(rate_wpm)
    pitch_value = check_pitch(pitch)
    range_value = check_pitch(pitch_range, "pitch range")
    if voice.startswith(PIPER_PREFIX):
        if _PIPER is None:  # avatarlab.speech (its __init__) loads the Piper module
            raise OptionError("Piper voices are not available: import avatarlab.speech first")
        return _PIPER(
            text,
            voice,
            rate_wpm,
            pitch=pitch_value,
            pitch_range=range_value,
            with_phones=with_phones,
        )
    job = _Job()
    with _LOCK, _espeak(job) as engine:
        engine.set_voice(voice)
        engine.set_rate(rate)
        engine.set_pitch(pitch_value, range_value)
        engine.synth(text, job)
        sample_rate = engine.sample_rate
    pcm = np.concatenate(job.pcm) if job.pcm else np.zeros(0, np.int16)
    audio = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
    phones = _phones_from_events(job.events, len(audio) / sample_rate)
    return Utterance(audio=audio, sample_rate=sample_rate, phones=phones, text=text, voice=voice)


def text_to_phonemes(text: str, voice: str = DEFAULT_VOICE) -> list[str]:
    """espeak mnemonics for ``text`` (stress marks kept, e.g. ``["h", "@", "l", "'oU"]``).

    Uses the voice's pronunciation rules without synthesising audio; the
    alignment path uses it to pronounce words missing from CMUdict.
    """
    return texts_to_phonemes([text], voice)[0]


def texts_to_phonemes(texts: list[str], voice: str = DEFAULT_VOICE) -> list[list[str]]:
    """:func:`text_to_phonemes` of each text, with one espeak-ng load for all of them."""
    with _LOCK, _espeak() as engine:
        engine.set_voice(voice)
        return [engine.text_to_phonemes(text) for text in texts]
