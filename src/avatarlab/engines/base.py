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

Engines are plug-ins: each lives in its own package and registers itself with
:func:`register_engine`; :func:`get_engine` builds one by name, and
:func:`engine_options` gives its options class without importing the engine (so the
command line builds its flags without torch). Another package adds an engine
through the ``avatarlab.engines`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.registry import Registry

if TYPE_CHECKING:
    from avatarlab.speech import SpeechAnalysis

Drives = Literal["speech", "motion"]
"""What an engine is driven by: speech (audio or text) or a driving face (video, image, camera)."""

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
class Avatar(Protocol):
    """A source analysed by :meth:`Engine.prepare`, reused by every render."""

    @property
    def fps(self) -> float:
        """Frame rate of the rendered frames (a portrait's option, or a video's own rate)."""
        ...

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of every rendered frame."""
        ...

    def describe(self) -> list[str]:
        """Human notes on what the engine chose, e.g. ``"mouth interior: source"``."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A talking-head generator.

    ``Options`` is a frozen dataclass whose fields all have defaults, each with a doc
    line in its ``Attributes:`` section and checked in ``__post_init__`` (raising
    ``OptionError``): the command line makes one flag of each field. ``still_only``
    names the option fields that apply to still portraits only (a video source keeps
    its own frame rate and motion), so setting one for a video is an error.

    ``prepare`` analyses a source once and returns an :class:`Avatar`;
    ``render`` yields one frame per output frame at the avatar's ``fps``;
    ``render_stream`` takes audio chunks and yields, for each chunk, the list of
    frames that became ready (possibly empty), then the remaining frames once the
    chunks run out.
    """

    name: ClassVar[str]
    Options: ClassVar[type]
    still_only: ClassVar[frozenset[str]]
    drives: ClassVar[Drives]

    def __init__(self, options: Any = None) -> None: ...

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


ENGINES: Registry[type[Engine]] = Registry("engine", entry_points="avatarlab.engines")
"""Engine name -> engine class (built-ins registered lazily, see :mod:`avatarlab.engines`)."""

_OPTIONS: Registry[type] = Registry("engine")
"""Engine name -> its ``Options`` class, for engines that registered it apart (lazily)."""

_DRIVES: dict[str, Drives] = {}
"""Engine name -> what drives it, for engines registered lazily (known without importing)."""

E = TypeVar("E", bound=type)


def register_engine(name: str) -> Callable[[E], E]:
    """Class decorator: register an engine (with its ``Options``) under ``name``."""

    def add(cls: E) -> E:
        ENGINES.register(name, cls)
        _OPTIONS.register(name, cls.Options)  # type: ignore[attr-defined]
        _DRIVES[name] = cls.drives  # type: ignore[attr-defined]
        return cls

    return add


def lazy_engine(name: str, engine: str, options: str, drives: Drives = "speech") -> None:
    """Register an engine by ``"module:Class"`` paths, imported on first use.

    ``options`` points at its ``Options`` class in a light module, so listing engines
    and their options imports neither the engine nor its dependencies; ``drives`` must
    equal the class's own ``drives``.
    """
    ENGINES.lazy(name, engine)
    _OPTIONS.lazy(name, options)
    _DRIVES[name] = drives


def unregister_engine(name: str) -> None:
    """Remove engine ``name`` (tests that register toy engines clean up with this)."""
    ENGINES.unregister(name)
    _OPTIONS.unregister(name)
    _DRIVES.pop(name, None)


def engine_drives(name: str) -> Drives:
    """What drives engine ``name``: ``"speech"`` (speak, dub, serve) or ``"motion"`` (reenact)."""
    if name not in _DRIVES:  # an entry-point engine: its class says
        _DRIVES[name] = ENGINES.get(name).drives
    return _DRIVES[name]


def list_engines(drives: Drives | None = None) -> list[str]:
    """Names accepted by :func:`get_engine`; with ``drives``, only the engines it drives.

    A plug-in engine that cannot be imported is left out of a ``drives`` listing with a
    warning (so one broken package does not break every command); choosing it by name
    gives the import error in one line.
    """
    names = ENGINES.names()
    if drives is None:
        return names
    kept = []
    for name in names:
        try:
            if engine_drives(name) == drives:
                kept.append(name)
        except OptionError as err:
            warnings.warn(str(err), RuntimeWarning, stacklevel=2)
    return kept


def engine_options(name: str) -> type:
    """The ``Options`` dataclass of the engine called ``name`` (unknown: ``OptionError``)."""
    if name in _OPTIONS.names():
        return _OPTIONS.get(name)
    return ENGINES.get(name).Options


def option_fields(cls: type) -> list[str]:
    """Field names of an options dataclass, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def resolve_engine_options(name: str, options: object = None) -> Any:
    """``options`` as an instance of engine ``name``'s ``Options``.

    ``options`` is ``None`` (the defaults), an ``Options`` instance, or a mapping of
    field values (lists become tuples, as TOML and JSON have no tuples).

    Raises:
        OptionError: unknown engine, a field the engine does not have (naming the
            engine's options), a bad value, or an instance of another class.
    """
    cls = engine_options(name)
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if not isinstance(options, Mapping):
        raise OptionError(
            f"engine {name!r} takes {cls.__name__} or a dict of its fields, "
            f"got {type(options).__name__}"
        )
    known = option_fields(cls)
    unknown = [key for key in options if key not in known]
    if unknown:
        raise OptionError(
            f"engine {name!r} has no option {', '.join(map(str, unknown))}: "
            f"its options are {', '.join(known) or 'none'}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return cls(**values)


def set_fields(options: object) -> list[str]:
    """Fields of a dataclass instance whose value differs from the field's default."""
    out = []
    for f in dataclasses.fields(options):  # type: ignore[arg-type]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if getattr(options, f.name) != default:
            out.append(f.name)
    return out


def get_engine(name: str, options: object = None) -> Engine:
    """Create the engine called ``name`` with ``options`` (see :func:`resolve_engine_options`).

    Raises:
        OptionError: unknown name or bad options.
    """
    engine: Engine = ENGINES.get(name)(resolve_engine_options(name, options))
    return engine
