"""The interface every generator implements, the speech that drives it, and the registry.

An engine turns a *source* (a portrait, or a video of a talking person) and a
*driver* (speech audio, text, or an analysis of either) into frames::

    engine = get_engine("warp")
    avatar = engine.prepare("portrait.jpg")          # analyse once
    for frame in engine.render(avatar, Driver(text="Hello there")):
        ...                                          # RGB uint8 (H, W, 3), source size

Live servers feed audio as it arrives and get the frames of each chunk back as
soon as they are ready::

    for frames in engine.render_stream(avatar, chunks, sample_rate=16000):
        send(frames)                                 # list of frames per chunk

Engines are chosen by name (:func:`get_engine`); each lives in its own package
and is imported only when asked for.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from avatarlab.errors import OptionError

if TYPE_CHECKING:
    from avatarlab.speech import SpeechAnalysis

Frame = np.ndarray
"""An RGB uint8 frame ``(H, W, 3)``."""

Source = str | os.PathLike[str] | np.ndarray
"""A portrait (image file or RGB uint8 array) or a video file."""


@dataclass(frozen=True)
class Driver:
    """What the avatar says: exactly one of ``audio``, ``text`` or ``speech``.

    Attributes:
        audio: float32 mono ``(N,)`` speech at ``sample_rate`` Hz, or a path to an
            audio/video file.
        sample_rate: rate of an ``audio`` array, Hz.
        text: words to speak with espeak-ng in ``voice``.
        voice: espeak-ng voice for ``text`` (e.g. ``"en-us"``, ``"fr"``).
        transcript: the words spoken in ``audio``, for forced alignment (English).
        language: language of ``audio`` (only English gets phone timing).
        speech: a ready :class:`~avatarlab.speech.SpeechAnalysis` (skips analysis).
    """

    audio: np.ndarray | str | os.PathLike[str] | None = None
    sample_rate: int | None = None
    text: str | None = None
    voice: str = "en-us"
    transcript: str | None = None
    language: str = "en"
    speech: SpeechAnalysis | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.audio, self.text, self.speech))
        if given != 1:
            raise OptionError("a driver needs exactly one of audio, text or speech")
        if isinstance(self.audio, np.ndarray) and self.sample_rate is None:
            raise OptionError("audio given as an array needs sample_rate=<Hz>")

    def analyse(self, fps: float) -> SpeechAnalysis:
        """Speech timing and per-frame mouth parameters at ``fps`` (cached analysis if given)."""
        if self.speech is not None:
            if abs(self.speech.mouth.fps - fps) > 1e-6:
                raise OptionError(
                    f"the speech analysis was made at {self.speech.mouth.fps} fps but the "
                    f"avatar renders at {fps} fps: analyse it again with fps={fps}"
                )
            return self.speech
        from avatarlab.speech import analyze_speech

        if self.text is not None:
            return analyze_speech(text=self.text, voice=self.voice, fps=fps)
        return analyze_speech(
            audio=self.audio,
            sample_rate=self.sample_rate,
            transcript=self.transcript,
            language=self.language,
            fps=fps,
        )


@runtime_checkable
class Engine(Protocol):
    """A talking-head generator.

    ``prepare`` analyses a source once and returns an engine-specific avatar;
    ``render`` yields one frame per output frame at the avatar's ``fps``;
    ``render_stream`` takes audio chunks and yields, for each chunk, the list of
    frames that became ready (possibly empty), then the remaining frames once the
    chunks run out.
    """

    name: str

    def prepare(self, source: Source) -> Any:
        """Analyse a portrait or video; the result is reused by every render."""
        ...

    def render(self, avatar: Any, driver: Driver) -> Iterator[Frame]:
        """Frames (RGB uint8, source size) speaking ``driver``."""
        ...

    def render_stream(
        self, avatar: Any, audio_chunks: Iterable[np.ndarray], sample_rate: int
    ) -> Iterator[list[Frame]]:
        """Frames for live audio: one list per incoming chunk, then the tail."""
        ...


#: Engine name -> "module:attribute" of its class, imported on first use.
ENGINES: dict[str, str] = {
    "warp": "avatarlab.engines.warp:WarpEngine",
    "wav2lip": "avatarlab.engines.wav2lip:Wav2LipEngine",
}


def list_engines() -> list[str]:
    """Names accepted by :func:`get_engine`."""
    return sorted(ENGINES)


def get_engine(name: str, **kwargs: Any) -> Engine:
    """Create the engine called ``name``; ``kwargs`` go to its constructor.

    Raises:
        OptionError: unknown name.
    """
    target = ENGINES.get(name)
    if target is None:
        raise OptionError(f"unknown engine {name!r}: use one of {', '.join(list_engines())}")
    module_name, attr = target.split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    engine: Engine = cls(**kwargs)
    return engine
