"""The voice catalogue: every voice :func:`~avatarlab.speech.tts.synthesize` can speak with.

espeak-ng voices (listed once per process, then served from memory) and the Piper voices
added with :func:`~avatarlab.speech.piper.add_piper_voice`, sorted by language name then
voice name, each with the ``id`` that ``synthesize(voice=...)`` takes and the controls it
honours, so a voice picker can offer the right sliders. :meth:`VoiceInfo.to_dict` and
:func:`catalog_dict` give JSON-ready data for a ``GET /voices`` endpoint.

A server should accept only catalogue ids from its clients (:func:`find_voice`): a
``"piper:/path"`` id would let a client name any file on the server.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from avatarlab.errors import OptionError
from avatarlab.speech.piper import PiperVoiceFile, added_piper_voices, register_piper_voice
from avatarlab.speech.tts import DEFAULT_VOICE, PIPER_PREFIX, list_variants, list_voices

#: Controls each engine honours (``synthesize`` arguments): rate_wpm, pitch, pitch_range.
ESPEAK_CONTROLS: tuple[str, ...] = ("rate", "pitch", "pitch_range")


@dataclass(frozen=True)
class VoiceInfo:
    """One voice of the catalogue.

    Attributes:
        id: what ``synthesize(voice=...)`` takes (``"en-us"``, ``"sit/yue"``,
            ``"piper:en_US-lessac-medium"``).
        name: human name (``"English (America)"``, ``"lessac (medium)"``).
        language: lower-case language code (``"en-us"``, ``"fr-fr"``, ``"cmn"``).
        language_name: the language in English, for grouping (``"English"``).
        engine: ``"espeak"`` or ``"piper"``.
        controls: the ``synthesize`` options the voice honours, of ``"rate"``,
            ``"pitch"``, ``"pitch_range"``.
    """

    id: str
    name: str
    language: str
    language_name: str
    engine: str
    controls: tuple[str, ...] = ESPEAK_CONTROLS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``controls`` as a list)."""
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "language_name": self.language_name,
            "engine": self.engine,
            "controls": list(self.controls),
        }


@dataclass(frozen=True)
class VariantInfo:
    """An espeak-ng voice variant: ``synthesize(voice=f"{voice_id}+{id}")`` speaks with it.

    Attributes:
        id: the variant file (``"f3"``, ``"Alicia"``, ``"whisper"``).
        name: its name (``"female3"``).
        gender: ``"female"``, ``"male"`` or ``""``.
    """

    id: str
    name: str
    gender: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"id": self.id, "name": self.name, "gender": self.gender}


def _sort_key(v: VoiceInfo) -> tuple[str, int, str, str]:
    # Within a language, espeak first (always there), then by name.
    return (v.language_name.casefold(), v.engine != "espeak", v.name.casefold(), v.id)


@functools.cache
def espeak_voices() -> tuple[VoiceInfo, ...]:
    """The installed espeak-ng voices, sorted by language name then name (listed once).

    The id is the voice's language code, or its file (``"sit/yue"``) where two voices
    share a code; the language name is the voice name before any parenthesis
    (``"English (America)"`` -> ``"English"``).
    """
    voices = list_voices()
    shared = {code for code, n in Counter(v.language for v in voices).items() if n > 1}
    infos = [
        VoiceInfo(
            id=v.identifier if v.language in shared or not v.language else v.language,
            name=v.name,
            language=v.language.lower(),
            language_name=v.name.split(" (", 1)[0].strip() or v.language,
            engine="espeak",
        )
        for v in voices
        if v.identifier and not v.identifier.startswith("mb/")  # MBROLA needs its own binary
    ]
    return tuple(sorted(infos, key=_sort_key))


@functools.cache
def espeak_variants() -> tuple[VariantInfo, ...]:
    """espeak-ng's voice variants (male and female timbres, whisper ...), by gender then
    name, listed once; they apply to any espeak voice as ``"en-us+f3"``."""
    variants = [
        VariantInfo(id=v.identifier.removeprefix("!v/"), name=v.name, gender=v.gender)
        for v in list_variants()
    ]
    return tuple(sorted(variants, key=lambda v: (v.gender, v.name.casefold())))


def language_name(code: str) -> str:
    """English name of a language code from espeak's voices (``"en-us"`` -> ``"English"``),
    trying the code, then its first part; the code itself when espeak has neither."""
    code = code.lower().replace("_", "-")
    names = {v.language: v.language_name for v in espeak_voices()}
    base = code.split("-", 1)[0]
    fallback = next((n for lang, n in names.items() if lang.split("-", 1)[0] == base), code)
    return names.get(code) or names.get(base) or fallback


def voice_catalog() -> list[VoiceInfo]:
    """Every voice: espeak-ng's and the added Piper voices, grouped by language.

    Cheap to call repeatedly: the espeak list is read once per process; Piper voices
    are listed from what :func:`~avatarlab.speech.piper.add_piper_voice` checked.
    """
    piper = [piper_voice_info(v) for v in added_piper_voices()]
    return sorted([*espeak_voices(), *piper], key=_sort_key)


def find_voice(voice_id: str) -> VoiceInfo:
    """The catalogue entry with this id, or :class:`OptionError` naming a few ids.

    An espeak id may carry a variant (``"en-us+f3"``: see :func:`espeak_variants`); its
    entry then has that id and the variant in its name.
    """
    catalog = voice_catalog()
    base, plus, variant = voice_id.partition("+")
    if voice_id.startswith(PIPER_PREFIX):
        base, plus = voice_id, ""
    for v in catalog:
        if v.id == base and not (plus and v.engine != "espeak"):
            if not plus:
                return v
            found = next((x for x in espeak_variants() if x.id.lower() == variant.lower()), None)
            if found is not None:
                return VoiceInfo(
                    voice_id, f"{v.name}, {found.name}", v.language, v.language_name, v.engine
                )
    examples = [v.id for v in catalog if v.engine == "piper"][:3]
    examples += [
        c for c in ("en-us", "en-gb", "fr-fr", "de", "es") if any(v.id == c for v in catalog)
    ]
    raise OptionError(
        f"unknown voice {voice_id!r}: use an id from the voice catalogue, such as "
        f"{', '.join(examples)}, optionally with a variant as en-us+f3 ({len(catalog)} voices)"
    )


def catalog_dict() -> dict[str, Any]:
    """The catalogue as JSON-ready data, for ``GET /voices``: ``{"default": id,
    "languages": [{"language_name", "voices": [VoiceInfo.to_dict(), ...]}, ...],
    "espeak_variants": [VariantInfo.to_dict(), ...]}``, languages in catalogue order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for v in voice_catalog():
        groups.setdefault(v.language_name, []).append(v.to_dict())
    return {
        "default": DEFAULT_VOICE,
        "languages": [{"language_name": k, "voices": vs} for k, vs in groups.items()],
        "espeak_variants": [v.to_dict() for v in espeak_variants()],
    }


def piper_voice_info(voice: PiperVoiceFile) -> VoiceInfo:
    """The catalogue entry of a Piper voice."""
    return VoiceInfo(
        id=PIPER_PREFIX + voice.stem,
        name=voice.name,
        language=voice.language,
        language_name=voice.language_name or language_name(voice.language),
        engine="piper",
        controls=("rate",),
    )


def add_piper_voice(path: str | os.PathLike[str]) -> VoiceInfo:
    """Check a Piper voice and list it as ``"piper:STEM"`` (catalogue and
    :func:`~avatarlab.speech.tts.synthesize`); returns its catalogue entry.

    The model is loaded on first use. Adding the same file again is harmless; another
    file with the same stem replaces it.

    Raises:
        OptionError: piper-tts is not installed, or the path is not a ``.onnx``.
        MissingWeightsError / CheckpointError: the file or its ``.onnx.json`` is missing
            or unusable.
    """
    return piper_voice_info(register_piper_voice(path))
