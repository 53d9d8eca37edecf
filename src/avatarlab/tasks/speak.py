"""Make a portrait speak, or re-lip-sync a video: the ``speak`` and ``dub`` tasks.

Both analyse the speech once (:func:`avatarlab.speech.analyze_speech`), render
frames with any registered engine (``warp`` by default) and stream them into an MP4
with the speech muxed in, so memory stays flat however long the speech is. The
output appears only when complete. Task options (:class:`SpeakOptions`,
:class:`DubOptions`) hold what every engine shares; the engine's own options come
as ``engine_options`` (its ``Options`` instance, or a dict of its fields)::

    from avatarlab.tasks import speak, SpeakOptions
    speak("portrait.jpg", text="Hello!", out="hello.mp4",
          options=SpeakOptions(engine="warp"), engine_options={"seed": 1})
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab._util import check_crf, track_progress
from avatarlab.engines import ENGINES, Driver, Engine, list_engines, resolve_engine_options
from avatarlab.engines.base import set_fields
from avatarlab.errors import OptionError
from avatarlab.tasks._output import check_output_file
from avatarlab.tasks.postprocess import PostOptions, Postprocessor

log = logging.getLogger("avatarlab.tasks")

AudioInput = str | os.PathLike[str] | np.ndarray
EngineOptions = object | Mapping[str, Any] | None
"""An engine's ``Options`` instance, a dict of its field values, or ``None`` (defaults)."""


@functools.cache
def _transcript_hint() -> None:
    """Log once per process that recognised speech gives approximate lip timing."""
    log.warning(
        "lip timing comes from recognising the speech; pass its words with --transcript "
        "(transcript=...) for exact timing"
    )


def _check_common(engine: str, crf: int) -> None:
    speakers = list_engines("speech")
    if engine not in speakers:
        if engine in list_engines():
            raise OptionError(
                f"engine {engine!r} follows a driving face, not speech: use reenact, or one "
                f"of {', '.join(speakers)} here"
            )
        raise OptionError(f"unknown engine {engine!r}: use one of {', '.join(speakers)}")
    check_crf(crf)


@dataclass(frozen=True)
class SpeakOptions:
    """Options of :func:`speak` that do not depend on the engine.

    Attributes:
        engine: generator name (see ``avatarlab.engines.list_engines()``); its own
            options travel as ``engine_options``.
        voice: espeak-ng voice for ``text`` (e.g. ``en-us``, ``fr``).
        language: language of ``audio`` (only English gets phone timing).
        crf: H.264 quality (0 lossless .. 51 worst; 18 visually lossless).
    """

    engine: str = "warp"
    voice: str = "en-us"
    language: str = "en"
    crf: int = 18

    def __post_init__(self) -> None:
        _check_common(self.engine, self.crf)


@dataclass(frozen=True)
class DubOptions:
    """Options of :func:`dub` that do not depend on the engine.

    Attributes:
        engine: generator name (see ``avatarlab.engines.list_engines()``); its own
            options travel as ``engine_options``.
        language: language of the new speech (only English gets phone timing).
        crf: H.264 quality (0 lossless .. 51 worst; 18 visually lossless).
    """

    engine: str = "warp"
    language: str = "en"
    crf: int = 18

    def __post_init__(self) -> None:
        _check_common(self.engine, self.crf)


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`speak` or :func:`dub` wrote.

    Attributes:
        path: the MP4 file.
        frames: frames written; fps: their rate; duration: seconds of speech.
        speech_source: which speech analysis ran (``"espeak"``,
            ``"pocketsphinx-align"``, ``"pocketsphinx-words"``, ``"pocketsphinx-phones"``,
            ``"acoustic"``).
        notes: what the analysis and the engine chose and why.
    """

    path: Path
    frames: int
    fps: float
    duration: float
    speech_source: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the path as a string, seconds rounded to ms)."""
        d = asdict(self)
        d.update(path=str(self.path), duration=round(self.duration, 3))
        return d


def _driver(
    audio: AudioInput | None,
    sample_rate: int | None,
    text: str | None,
    voice: str,
    transcript: str | None,
    language: str,
) -> Driver:
    if (audio is None) == (text is None):
        raise OptionError("give either audio or text to speak (exactly one)")
    if text is not None:
        return Driver(text=text, voice=voice)
    return Driver(audio=audio, sample_rate=sample_rate, transcript=transcript, language=language)


def _engine(
    name: str, engine_options: EngineOptions, source: str | os.PathLike[str] | np.ndarray
) -> Engine:
    """The engine with its options checked, refusing portrait-only options for a video."""
    options = resolve_engine_options(name, engine_options)
    cls = ENGINES.get(name)
    given = list(engine_options) if isinstance(engine_options, Mapping) else set_fields(options)
    still_only = [key for key in given if key in cls.still_only]
    if still_only and not isinstance(source, np.ndarray):
        from avatarlab.media import probe

        info = probe(source)
        if not info.is_image:
            them = "it" if len(still_only) == 1 else "them"
            raise OptionError(
                f"{', '.join(still_only)} only apply to still portraits, but {source} is a "
                f"video: it keeps its own frame rate ({info.fps:g} fps) and motion; leave {them} out"
            )
    return cls(options)


def _check_output(out: str | os.PathLike[str]) -> None:
    """Fail before any analysis on an output the writer cannot produce or place."""
    from avatarlab.media.writer import check_video_output

    check_video_output(out)
    check_output_file(out)


def _write(
    engine: Engine,
    avatar: Any,
    driver: Driver,
    out: str | os.PathLike[str],
    crf: int,
    what: str,
    post: Postprocessor,
) -> GenerateResult:
    from avatarlab.media import VideoWriter

    fps = float(avatar.fps)
    speech = driver.analyse(fps)
    if speech.source in ("pocketsphinx-words", "pocketsphinx-phones"):
        _transcript_hint()
    n = len(speech.mouth)
    if n == 0:
        raise OptionError("the speech is empty (0 frames long): pass audio or text with speech")
    frames = post.run(engine.render(avatar, Driver(speech=speech)), fps)
    with VideoWriter(
        out, fps, audio=speech.audio, sample_rate=speech.sample_rate, crf=crf
    ) as writer:
        for frame in track_progress(frames, what, total=n):
            writer.write(frame)
    notes = [*speech.notes, *avatar.describe()]
    return GenerateResult(
        Path(out), writer.frames_written, fps, speech.duration, speech.source, notes
    )


def speak(
    image: str | os.PathLike[str] | np.ndarray,
    *,
    audio: AudioInput | None = None,
    sample_rate: int | None = None,
    text: str | None = None,
    transcript: str | None = None,
    out: str | os.PathLike[str],
    options: SpeakOptions | None = None,
    engine_options: EngineOptions = None,
    post: PostOptions | None = None,
) -> GenerateResult:
    """Make the face in ``image`` say ``audio`` or ``text``; write an MP4 to ``out``.

    Args:
        image: portrait file or RGB uint8 ``(H, W, 3)`` array (photo, painting,
            cartoon: anything with a detectable face). The output keeps its size.
            A video file also works: it keeps its own frame rate and motion.
        audio: speech file (any format FFmpeg reads) or float32 mono array.
        sample_rate: Hz of an ``audio`` array.
        text: words to speak with espeak-ng (``options.voice``) instead of ``audio``.
        transcript: words spoken in ``audio`` (English) for exact phone timing.
        out: output video path (``.mp4``).
        options: see :class:`SpeakOptions`.
        engine_options: the engine's ``Options`` (e.g. ``WarpOptions(seed=1)``) or a
            dict of its fields (``{"seed": 1}``).
        post: face restoration and background replacement of every frame
            (:class:`~avatarlab.tasks.postprocess.PostOptions`; default: none).

    Raises:
        NoFaceError: no face in ``image``. OptionError: bad options, an option the
        engine does not have, a portrait-only option for a video, or not exactly one
        of ``audio``/``text``. MediaError: unreadable inputs. MissingWeightsError: the
        restorer's checkpoint is absent (before any rendering).
    """
    options = options or SpeakOptions()
    driver = _driver(audio, sample_rate, text, options.voice, transcript, options.language)
    _check_output(out)
    engine = _engine(options.engine, engine_options, image)
    stages = Postprocessor(post or PostOptions())
    avatar = engine.prepare(image)
    return _write(engine, avatar, driver, out, options.crf, "speaking", stages)


def dub(
    video: str | os.PathLike[str],
    audio: AudioInput,
    *,
    sample_rate: int | None = None,
    transcript: str | None = None,
    out: str | os.PathLike[str],
    options: DubOptions | None = None,
    engine_options: EngineOptions = None,
    post: PostOptions | None = None,
) -> GenerateResult:
    """Re-lip-sync ``video`` to the speech in ``audio``; write an MP4 to ``out``.

    The video's own head motion, blinks and background stay; only the mouth
    follows the new speech. Frame rate and size are the video's; when the speech
    is longer the ``warp`` engine plays the video forwards and backwards
    (``engine_options={"loop": "pingpong"}``, its default).

    Args:
        video: a video file with one visible speaker.
        audio: new speech, a file or a float32 mono array at ``sample_rate``.
        transcript: words spoken in ``audio`` (English) for exact phone timing.
        out: output video path (``.mp4``).
        options: see :class:`DubOptions`.
        engine_options: the engine's ``Options`` or a dict of its fields.
        post: face restoration and background replacement, as for :func:`speak`.

    Raises:
        NoFaceError: no face in any frame. OptionError, MediaError, MissingWeightsError
        as for :func:`speak`.
    """
    options = options or DubOptions()
    driver = _driver(audio, sample_rate, None, "en-us", transcript, options.language)
    _check_output(out)
    engine = _engine(options.engine, engine_options, video)
    stages = Postprocessor(post or PostOptions())
    avatar = engine.prepare(video)
    return _write(engine, avatar, driver, out, options.crf, "dubbing", stages)


__all__ = ["DubOptions", "GenerateResult", "SpeakOptions", "dub", "speak"]
