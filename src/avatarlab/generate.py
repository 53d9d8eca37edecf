"""Make a portrait speak, or re-lip-sync a video: the ``speak`` and ``dub`` entry points.

Both analyse the speech once (:func:`avatarlab.speech.analyze_speech`), render
frames with an engine (``warp`` by default) and stream them into an MP4 with the
speech muxed in, so memory stays flat however long the speech is. The output
appears only when complete.

    from avatarlab.generate import speak, SpeakOptions
    speak("portrait.jpg", text="Hello!", out="hello.mp4", options=SpeakOptions(seed=1))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarlab._util import track_progress
from avatarlab.engines.base import Driver, Engine, get_engine
from avatarlab.errors import OptionError

AudioInput = str | os.PathLike[str] | np.ndarray


@dataclass(frozen=True)
class SpeakOptions:
    """Options of :func:`speak` (each maps to one ``avatarlab speak`` flag).

    Attributes:
        engine: generator name (``"warp"``; ``"wav2lip"`` needs ``checkpoint``).
        fps: output frame rate.
        head_motion: idle head sway and speech nods, 0 (still) .. 1.
        blink_rate: blinks per minute (0: none).
        expressiveness: jaw-opening scale, 0 .. 2 (1 = natural).
        seed: seeds blinks and head motion (same seed, same video).
        crop_size: face processing resolution in pixels (64 .. 1024).
        teeth: mouth interior: ``"auto"``, ``"source"`` or ``"synthetic"``.
        language: language of ``audio`` (only English gets phone timing).
        checkpoint: weights file for neural engines.
        device: torch device of neural engines (``"auto"``: CUDA when present, else CPU).
        batch_size: frames per network call of neural engines.
        crf: H.264 quality (0 lossless .. 51 worst; 18 visually lossless).
    """

    engine: str = "warp"
    fps: float = 25.0
    head_motion: float = 0.5
    blink_rate: float = 17.0
    expressiveness: float = 1.0
    seed: int = 0
    crop_size: int = 256
    teeth: str = "auto"
    language: str = "en"
    checkpoint: str | None = None
    device: str = "auto"
    batch_size: int = 16
    crf: int = 18


@dataclass(frozen=True)
class DubOptions:
    """Options of :func:`dub` (each maps to one ``avatarlab dub`` flag).

    Attributes:
        engine: generator name (``"warp"``; ``"wav2lip"`` needs ``checkpoint``).
        expressiveness: jaw-opening scale, 0 .. 2 (1 = natural).
        crop_size: face processing resolution in pixels (64 .. 1024).
        loop: when the speech outlasts the video: ``"pingpong"`` or ``"loop"``.
        language: language of the new speech (only English gets phone timing).
        checkpoint: weights file for neural engines.
        device: torch device of neural engines (``"auto"``: CUDA when present, else CPU).
        batch_size: frames per network call of neural engines.
        crf: H.264 quality (0 lossless .. 51 worst; 18 visually lossless).
    """

    engine: str = "warp"
    expressiveness: float = 1.0
    crop_size: int = 256
    loop: str = "pingpong"
    language: str = "en"
    checkpoint: str | None = None
    device: str = "auto"
    batch_size: int = 16
    crf: int = 18


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


def _engine(
    name: str, checkpoint: str | None, warp_options: object, device: str, batch_size: int
) -> Engine:
    if name == "warp":
        return get_engine("warp", options=warp_options)
    # Without a path, neural engines look in the weights cache and, when the file is not
    # there, say which file they need and where it is published.
    return get_engine(name, checkpoint=checkpoint, device=device, batch_size=batch_size)


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


def _write(
    engine: Engine,
    avatar: object,
    driver: Driver,
    fps: float,
    out: str | os.PathLike[str],
    crf: int,
    what: str,
) -> GenerateResult:
    from avatarlab.media import VideoWriter

    speech = driver.analyse(fps)
    n = len(speech.mouth)
    if n == 0:
        raise OptionError("the speech is empty (0 frames long): pass audio or text with speech")
    frames = engine.render(avatar, Driver(speech=speech))
    with VideoWriter(
        out, fps, audio=speech.audio, sample_rate=speech.sample_rate, crf=crf
    ) as writer:
        for frame in track_progress(frames, what, total=n):
            writer.write(frame)
    notes = list(speech.notes)
    teeth = getattr(avatar, "teeth_source", None)
    if teeth:
        notes.append(f"mouth interior: {teeth}")
    return GenerateResult(
        Path(out), writer.frames_written, fps, speech.duration, speech.source, notes
    )


def speak(
    image: str | os.PathLike[str] | np.ndarray,
    *,
    audio: AudioInput | None = None,
    sample_rate: int | None = None,
    text: str | None = None,
    voice: str = "en-us",
    transcript: str | None = None,
    out: str | os.PathLike[str],
    options: SpeakOptions | None = None,
) -> GenerateResult:
    """Make the face in ``image`` say ``audio`` or ``text``; write an MP4 to ``out``.

    Args:
        image: portrait file or RGB uint8 ``(H, W, 3)`` array (photo, painting,
            cartoon: anything with a detectable face). The output keeps its size.
        audio: speech file (any format FFmpeg reads) or float32 mono array.
        sample_rate: Hz of an ``audio`` array.
        text: words to speak with espeak-ng instead of ``audio``.
        voice: espeak-ng voice for ``text``.
        transcript: words spoken in ``audio`` (English) for exact phone timing.
        out: output video path (``.mp4``).
        options: see :class:`SpeakOptions`.

    Raises:
        NoFaceError: no face in ``image``. OptionError: bad options, or not exactly
        one of ``audio``/``text``. MediaError: unreadable inputs.
    """
    from avatarlab.engines.warp import WarpOptions

    options = options or SpeakOptions()
    driver = _driver(audio, sample_rate, text, voice, transcript, options.language)
    warp = WarpOptions(
        crop_size=options.crop_size,
        fps=options.fps,
        head_motion=options.head_motion,
        blink_rate=options.blink_rate,
        expressiveness=options.expressiveness,
        seed=options.seed,
        teeth=options.teeth,  # type: ignore[arg-type]
    )
    from avatarlab.media.writer import check_video_output

    check_video_output(out)  # fail before any analysis
    engine = _engine(options.engine, options.checkpoint, warp, options.device, options.batch_size)
    avatar = engine.prepare(image)
    fps = float(getattr(avatar, "fps", options.fps))
    return _write(engine, avatar, driver, fps, out, options.crf, "speaking")


def dub(
    video: str | os.PathLike[str],
    audio: AudioInput,
    *,
    sample_rate: int | None = None,
    transcript: str | None = None,
    out: str | os.PathLike[str],
    options: DubOptions | None = None,
) -> GenerateResult:
    """Re-lip-sync ``video`` to the speech in ``audio``; write an MP4 to ``out``.

    The video's own head motion, blinks and background stay; only the mouth
    follows the new speech. Frame rate and size are the video's; when the speech
    is longer the video plays forwards and backwards (``loop="pingpong"``).

    Args:
        video: a video file with one visible speaker.
        audio: new speech, a file or a float32 mono array at ``sample_rate``.
        transcript: words spoken in ``audio`` (English) for exact phone timing.
        out: output video path (``.mp4``).
        options: see :class:`DubOptions`.

    Raises:
        NoFaceError: no face in any frame. OptionError, MediaError as for :func:`speak`.
    """
    from avatarlab.engines.warp import WarpOptions

    options = options or DubOptions()
    driver = _driver(audio, sample_rate, None, "en-us", transcript, options.language)
    warp = WarpOptions(
        crop_size=options.crop_size,
        expressiveness=options.expressiveness,
        loop=options.loop,  # type: ignore[arg-type]
        head_motion=0.0,
        blink_rate=0.0,
    )
    from avatarlab.media.writer import check_video_output

    check_video_output(out)  # fail before any analysis
    engine = _engine(options.engine, options.checkpoint, warp, options.device, options.batch_size)
    avatar = engine.prepare(video)
    fps = float(getattr(avatar, "fps", 25.0))
    return _write(engine, avatar, driver, fps, out, options.crf, "dubbing")
