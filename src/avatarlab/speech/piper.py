"""Piper neural voices (optional): a ``.onnx`` voice with its ``.onnx.json`` config beside it.

Piper (``pip install piper-tts``, developed against 1.8.0) speaks through onnxruntime on
the CPU; espeak-ng voices work without it. The user brings the voice files (nothing is
downloaded): :func:`add_piper_voice` checks a file and names it ``"piper:STEM"`` for
:func:`~avatarlab.speech.tts.synthesize` and the voice catalogue; ``"piper:/path/x.onnx"``
also works directly. The config is read and checked here (plain JSON), so a bad file is
reported in one line with or without the runtime; loaded models are kept (a few, by
path and modification time) because loading one takes a while.

Piper reports no phone timing for ordinary voice files. For English voices the phones
come from forced alignment of the text to the audio
(:func:`~avatarlab.speech.align.align_transcript`: ARPAbet, about 0.1 s CPU per sentence),
else from phone recognition; other languages get an empty phone list, as does
``with_phones=False`` (a live player needs only the audio).
"""

from __future__ import annotations

import collections
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab.errors import AvatarLabError, CheckpointError, MissingWeightsError, OptionError
from avatarlab.speech.phones import Phone
from avatarlab.speech.tts import PIPER_PREFIX, RATE_DEFAULT_WPM, Utterance, check_rate, use_piper

#: What to tell a user whose Python lacks the Piper runtime.
INSTALL_HINT = (
    "Piper voices need the piper-tts package: `pip install piper-tts` "
    "(espeak-ng voices work without it)"
)
#: Loaded voice models kept in memory (a medium voice is about 60 MB).
MAX_LOADED = 4
#: Piper phonemisers that fetch a model from the web on first use (not allowed here).
_DOWNLOADING_PHONEMES = ("pinyin",)


@dataclass(frozen=True)
class PiperVoiceFile:
    """A checked Piper voice: model and config paths and what the config says.

    Attributes:
        model: the ``.onnx`` file (absolute).
        config: its ``.onnx.json`` (absolute).
        name: the voice's name (config ``dataset`` and ``audio.quality``, else the file stem).
        language: lower-case language code with ``-`` (``"en-us"``), from the config.
        language_name: the language in English (``"English"``), or the code.
        espeak_voice: the espeak voice Piper phonemises with (``"en-us"``).
        sample_rate: Hz of the audio the model outputs.
        num_speakers: speakers in the model (the default one speaks).
        length_scale: the config's phone-length scale at the voice's own pace.
        mtime_ns: modification times of model and config, to reload a changed file.
    """

    model: Path
    config: Path
    name: str
    language: str
    language_name: str
    espeak_voice: str
    sample_rate: int
    num_speakers: int
    length_scale: float
    mtime_ns: tuple[int, int]

    @property
    def stem(self) -> str:
        """The file name without ``.onnx``: the NAME of ``"piper:NAME"``."""
        return self.model.name.removesuffix(".onnx")

    @property
    def english(self) -> bool:
        """Whether the voice speaks English (so its phones can be aligned)."""
        return self.espeak_voice.lower().replace("_", "-").split("-")[0] == "en"


def _config_error(config: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"Piper voice config {config} is not valid ({reason}): use the .onnx.json "
        "that came with the voice"
    )


def read_piper_voice(path: str | os.PathLike[str]) -> PiperVoiceFile:
    """Check a Piper voice file and read its config (no model is loaded).

    Raises:
        OptionError: the path is not a ``.onnx`` file, or the voice's phonemiser would
            download a model (Chinese ``pinyin`` voices).
        MissingWeightsError: the ``.onnx`` or its ``.onnx.json`` is missing.
        CheckpointError: the config is not JSON or lacks what Piper needs.
    """
    model = Path(path).expanduser()
    if model.suffix.lower() != ".onnx":
        raise OptionError(
            f"{model.name!r} is not a Piper voice: pass its .onnx file "
            "(with the .onnx.json config beside it)"
        )
    if not model.is_file():
        raise MissingWeightsError(
            f"Piper voice file not found: {model}: pass the path of a .onnx voice "
            "(with its .onnx.json config beside it)"
        )
    model = model.resolve()
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise MissingWeightsError(
            f"Piper voice {model.name} has no config {config.name} beside it: put the "
            "voice's .onnx.json next to the .onnx (Piper's convention)"
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _config_error(config, f"not readable JSON: {exc}") from None
    try:
        sample_rate = int(data["audio"]["sample_rate"])
        espeak_voice = str(data["espeak"]["voice"])
        num_speakers = int(data["num_speakers"])
        int(data["num_symbols"])
        if not isinstance(data["phoneme_id_map"], dict) or not data["phoneme_id_map"]:
            raise ValueError("phoneme_id_map is empty")
        length_scale = float(data.get("inference", {}).get("length_scale", 1.0))
    except KeyError as exc:
        raise _config_error(config, f"no {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise _config_error(config, str(exc) or type(exc).__name__) from None
    if sample_rate <= 0 or num_speakers < 1 or length_scale <= 0:
        raise _config_error(config, "sample_rate, num_speakers or length_scale out of range")
    if data.get("phoneme_type") in _DOWNLOADING_PHONEMES:
        raise OptionError(
            f"Piper voice {model.name} uses {data['phoneme_type']} phonemes, whose model "
            "Piper downloads at run time: use a voice phonemised by espeak"
        )
    language = data.get("language") if isinstance(data.get("language"), dict) else {}
    code = str(language.get("code") or espeak_voice).replace("_", "-").lower()
    dataset = str(data.get("dataset") or "")
    quality = str(data.get("audio", {}).get("quality") or "")
    name = f"{dataset} ({quality})" if dataset and quality else dataset
    return PiperVoiceFile(
        model=model,
        config=config,
        name=name or model.name.removesuffix(".onnx"),
        language=code,
        language_name=str(language.get("name_english") or ""),
        espeak_voice=espeak_voice,
        sample_rate=sample_rate,
        num_speakers=num_speakers,
        length_scale=length_scale,
        mtime_ns=(model.stat().st_mtime_ns, config.stat().st_mtime_ns),
    )


def piper_available() -> bool:
    """Whether the ``piper-tts`` runtime can be imported."""
    try:
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def _require_runtime() -> Any:
    try:
        import piper
    except ImportError:
        raise OptionError(INSTALL_HINT) from None
    return piper


_LOCK = threading.Lock()
#: Voices added by :func:`add_piper_voice`, by stem.
_ADDED: dict[str, PiperVoiceFile] = {}
#: Loaded ``piper.PiperVoice`` objects, least recently used first.
_LOADED: collections.OrderedDict[tuple[Path, tuple[int, int]], Any] = collections.OrderedDict()


def register_piper_voice(path: str | os.PathLike[str]) -> PiperVoiceFile:
    """Check a Piper voice and list it as ``"piper:STEM"`` (see
    :func:`avatarlab.speech.voices.add_piper_voice`, which also returns its catalogue entry).

    Raises:
        OptionError: piper-tts is not installed, or the path is not a ``.onnx``.
        MissingWeightsError / CheckpointError: see :func:`read_piper_voice`.
    """
    voice = read_piper_voice(path)
    _require_runtime()
    with _LOCK:
        _ADDED[voice.stem] = voice
    return voice


def remove_piper_voices() -> None:
    """Forget every added Piper voice and unload the models."""
    with _LOCK:
        _ADDED.clear()
        _LOADED.clear()


def added_piper_voices() -> list[PiperVoiceFile]:
    """The voices :func:`add_piper_voice` added, by stem."""
    with _LOCK:
        return [_ADDED[k] for k in sorted(_ADDED)]


def resolve_piper_voice(voice_id: str) -> PiperVoiceFile:
    """The voice file of ``"piper:STEM"`` (added) or ``"piper:/path/voice.onnx"``."""
    ref = voice_id.removeprefix(PIPER_PREFIX).strip()
    with _LOCK:
        added = _ADDED.get(ref)
    if added is not None:
        return read_piper_voice(added.model)  # re-checked: the file may have changed
    if ref.lower().endswith(".onnx") or os.sep in ref:
        return read_piper_voice(ref)
    names = ", ".join(PIPER_PREFIX + v.stem for v in added_piper_voices()) or "none added"
    raise OptionError(
        f"unknown Piper voice {voice_id!r} ({names}): add it with add_piper_voice(path) "
        "or pass 'piper:/path/to/voice.onnx'"
    )


def _loaded(voice: PiperVoiceFile) -> Any:
    """The ``piper.PiperVoice`` for ``voice``, loaded once (per file version)."""
    piper = _require_runtime()
    key = (voice.model, voice.mtime_ns)
    with _LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
    try:
        loaded = piper.PiperVoice.load(voice.model, config_path=voice.config)
    except Exception as exc:  # onnxruntime and piper raise their own types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(
            f"Piper voice {voice.model.name} could not be loaded ({first}): the file is "
            "damaged or not a Piper voice"
        ) from None
    with _LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > MAX_LOADED:
            _LOADED.popitem(last=False)
    return loaded


def _align(audio: np.ndarray, sample_rate: int, text: str) -> list[Phone]:
    """ARPAbet phones of English speech: aligned to ``text``, else recognised."""
    from avatarlab.media import SPEECH_RATE, resample
    from avatarlab.speech.align import align_transcript, recognize_phones

    try:
        return align_transcript(audio, text, sample_rate).phones
    except AvatarLabError:
        return recognize_phones(resample(audio, sample_rate, SPEECH_RATE))


def synthesize_piper(
    text: str,
    voice: str,
    rate_wpm: float | None = None,
    pitch: float | None = None,
    pitch_range: float | None = None,
    with_phones: bool = True,
) -> Utterance:
    """Speak ``text`` with a Piper voice (``"piper:STEM"`` or ``"piper:/path/x.onnx"``).

    ``rate_wpm`` scales the voice's own pace (175 wpm = as trained: 350 is twice as
    fast). Piper has no pitch control: ``pitch`` and ``pitch_range`` must be ``None``
    or 50 (the voice's own). Use :func:`~avatarlab.speech.tts.synthesize`, which checks
    the text first.

    Returns:
        An :class:`Utterance` at the voice's sample rate with ``source="piper"``; phones
        as the module doc says.
    """
    for what, value in (("pitch", pitch), ("pitch range", pitch_range)):
        if value is not None and value != 50:
            raise OptionError(
                f"Piper voices have no {what} control: leave it out (espeak voices take 0..100)"
            )
    rate = check_rate(rate_wpm)
    info = resolve_piper_voice(voice)
    model = _loaded(info)
    piper = _require_runtime()
    syn = piper.SynthesisConfig(length_scale=info.length_scale * RATE_DEFAULT_WPM / rate)
    try:
        chunks = [chunk.audio_float_array for chunk in model.synthesize(text, syn_config=syn)]
    except Exception as exc:  # onnxruntime errors on a model that is not a Piper voice
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AvatarLabError(
            f"Piper voice {info.model.name} failed to speak ({first}): check that it is "
            "a Piper voice and its .onnx.json belongs to it"
        ) from None
    if not chunks:
        raise OptionError("Piper found nothing to say in the text: pass some words")
    audio = np.concatenate([np.asarray(c, np.float32).reshape(-1) for c in chunks])
    phones = _align(audio, info.sample_rate, text) if with_phones and info.english else []
    return Utterance(
        audio=audio,
        sample_rate=info.sample_rate,
        phones=phones,
        text=text,
        voice=voice,
        source="piper",
    )


use_piper(synthesize_piper)
