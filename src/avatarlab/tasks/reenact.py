"""Make a portrait or a video follow a driving face: the ``reenact`` task.

The engine (``reenact`` by default, any engine with ``drives = "motion"``) prepares
the source once, then answers each driving frame with one output frame, streamed
into an MP4 with the chosen audio, so memory stays flat however long the clip is.
The output appears only when complete::

    from avatarlab.tasks import reenact
    reenact("portrait.jpg", "driving.mp4", out="out.mp4")
    reenact("portrait.jpg", "smile.jpg", out="smile.mp4")        # hold one expression
    reenact("me.mp4", "driving.mp4", out="v2v.mp4",
            options=ReenactOptions(loop="stop"))                   # video to video
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab._util import track_progress
from avatarlab.constants import DEFAULT_FPS
from avatarlab.engines import engine_drives, get_engine
from avatarlab.engines.reenact.driver import MotionDriver
from avatarlab.engines.reenact.options import ReenactOptions
from avatarlab.errors import OptionError
from avatarlab.tasks._output import check_output_file
from avatarlab.tasks.postprocess import PostOptions, Postprocessor

EngineOptions = object | Mapping[str, Any] | None


@dataclass(frozen=True)
class ReenactResult:
    """What :func:`reenact` wrote.

    Attributes:
        path: the MP4 file.
        frames: frames written; fps: their rate; duration: seconds.
        audio: where the sound came from (``driving``, ``none``, a file path, or
            ``none (the driving clip has no audio)``).
        notes: what the engine chose and what happened (held poses, clamped turns).
    """

    path: Path
    frames: int
    fps: float
    duration: float
    audio: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the path as a string, seconds rounded to ms)."""
        d = asdict(self)
        d.update(path=str(self.path), duration=round(self.duration, 3))
        return d


def _audio(
    options: ReenactOptions, driver: MotionDriver
) -> tuple[np.ndarray | None, int | None, str]:
    """Audio to mux (``(C, N)`` float32 or None), its rate, and a note on its origin."""
    from avatarlab.media import probe, read_audio_with_rate

    if options.audio == "none":
        return None, None, "none"
    if options.audio == "driving":
        if driver.video is None or not probe(driver.video).has_audio:
            return None, None, "none (the driving clip has no audio)"
        path: str | os.PathLike[str] = driver.video
    else:
        path = options.audio
    audio, rate = read_audio_with_rate(path, mono=False)
    return np.atleast_2d(audio), rate, str(options.audio)


def reenact(
    source: str | os.PathLike[str] | np.ndarray,
    driving: str | os.PathLike[str] | np.ndarray,
    *,
    out: str | os.PathLike[str],
    options: ReenactOptions | None = None,
    engine_options: EngineOptions = None,
    post: PostOptions | None = None,
) -> ReenactResult:
    """Make the face in ``source`` follow ``driving``; write an MP4 to ``out``.

    Args:
        source: a portrait (file or RGB uint8 array) or a source video (each of its
            frames keeps its own head motion and takes the driving expression change).
        driving: a driving video (one output frame per driving frame, at its rate and
            length; motion relative to its first frame) or an image (its expression
            eases in and is held for ``options.duration`` seconds, with blinks).
        out: output video path (``.mp4``).
        options: see :class:`~avatarlab.engines.reenact.ReenactOptions`.
        engine_options: the engine's ``Options`` or a dict of its fields.
        post: face restoration and background replacement of every frame
            (:class:`~avatarlab.tasks.postprocess.PostOptions`; default: none).

    Raises:
        NoFaceError: no face in the source or the driving clip (naming frames), or a
        source face turned too far. OptionError: bad options, or an engine that does
        not follow faces. MediaError: unreadable inputs or an extreme aspect ratio.
        MissingWeightsError: the restorer's checkpoint is absent (before any rendering).
    """
    from avatarlab.media import VideoWriter
    from avatarlab.media.writer import check_video_output

    options = options or ReenactOptions()
    check_video_output(out)
    check_output_file(out)
    if engine_drives(options.engine) != "motion":
        raise OptionError(
            f"engine {options.engine!r} makes faces speak; reenact needs a motion engine "
            f"such as 'reenact'"
        )
    engine: Any = get_engine(options.engine, engine_options)
    stages = Postprocessor(post or PostOptions())
    avatar = engine.prepare(source)
    fps = float(avatar.fps) if avatar.is_video else DEFAULT_FPS
    driver = MotionDriver.from_path(driving, fps=fps, duration=options.duration)
    fps = driver.frame_rate()
    audio, rate, audio_note = _audio(options, driver)
    notes: list[str] = list(avatar.describe())
    frames = stages.run(engine.reenact(avatar, driver, options, notes), fps)
    with VideoWriter(out, fps, sample_rate=rate, crf=options.crf) as writer:
        for i, frame in enumerate(track_progress(frames, "reenacting", total=driver.n_frames())):
            if audio is not None and rate is not None:
                a, b = round(i * rate / fps), round((i + 1) * rate / fps)
                if a < audio.shape[1]:
                    writer.write_audio(audio[:, a:b])
            writer.write(frame)
    n = writer.frames_written
    return ReenactResult(Path(out), n, fps, n / fps, audio_note, notes)


__all__ = ["ReenactOptions", "ReenactResult", "reenact"]
