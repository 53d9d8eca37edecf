"""The shipped backend: any registered engine's streaming form behind :class:`AvatarStream`.

:class:`EngineBackend` prepares avatars and opens streams with the engine named in
:class:`~avatarlab.serve.options.ServeOptions` (``warp`` by default); nothing here
names an engine.

:class:`EngineStream` feeds the engine one tick of audio (1/25 s at 48 kHz) at a
time from the session's :class:`SpeechQueue` (silence while nothing is said, so
the portrait keeps blinking and swaying) and pairs each output frame with the audio
of the same time span. The engine emits a frame only once it has heard a little
audio past it (its look-ahead), so the stream feeds ahead as far as needed and
keeps the fed audio until its frame is out: audio and frame of a tick always cover
the same instant. Engines at another frame rate (a 30 fps video avatar) are
resampled in time to 25 fps by taking, for each tick, the frame at its midpoint.

With a ``motion_engine`` (``reenact`` by default in the server) the backend also
drives avatars with a camera: :meth:`EngineBackend.prepare_motion` analyses a
portrait for that engine and :meth:`EngineBackend.open_camera` runs it over live
camera frames (``engine.render(avatar, MotionDriver(live=...))``).

With a ``background`` (:class:`~avatarlab.tasks.postprocess.BackgroundOptions`) every frame
handed out, speech- or camera-driven, goes through its own
:class:`~avatarlab.body.masks.BackgroundReplacer` (one per stream, so mask smoothing follows
that session's frames), after it is scaled to the stream size.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avatarlab.body.masks import BackgroundReplacer, parse_background
from avatarlab.engines.base import Engine
from avatarlab.errors import OptionError
from avatarlab.serve.options import AUDIO_RATE, FPS
from avatarlab.serve.stream import TICK_SAMPLES, SpeechQueue, Tick
from avatarlab.tasks.postprocess import BackgroundOptions

Finish = Callable[[np.ndarray], np.ndarray]
"""A per-stream last step on each frame (RGB uint8 ``(H, W, 3)`` in and out)."""


def stream_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled to fit ``max_side`` (never up), rounded down to even."""
    scale = min(1.0, max_side / max(width, height))
    w = max(2, int(width * scale) // 2 * 2)
    h = max(2, int(height * scale) // 2 * 2)
    return w, h


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (RGB uint8 ``(H, W, 3)``) at ``size`` = ``(width, height)``.

    Shrinks with area averaging; a frame already that size up to one odd pixel is cropped.
    """
    h, w = frame.shape[:2]
    if (w, h) == size:
        return frame
    if w - size[0] <= 1 and h - size[1] <= 1:
        return np.ascontiguousarray(frame[: size[1], : size[0]])
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class EngineStream:
    """An :class:`AvatarStream` over ``engine.render_stream`` for one session.

    Args:
        engine: any engine with ``render_stream(avatar, chunks, sample_rate)``.
        avatar: what ``engine.prepare`` returned; it needs ``fps`` and ``frame_size``.
        max_side: longest side of the frames handed out.
        finish: applied to each frame at the stream size (the background replacer);
            closed with the stream when it has a ``close`` method.
    """

    def __init__(
        self, engine: Engine, avatar: Any, max_side: int, finish: Finish | None = None
    ) -> None:
        self._finish = finish
        self._speech = SpeechQueue()
        self._fed: deque[tuple[np.ndarray, int | None]] = deque()  # per tick, not yet played
        self._frames: deque[np.ndarray] = deque()  # engine frames not yet used
        self._first = 0  # engine index of self._frames[0]
        self._tick = 0
        self._engine_fps = float(avatar.fps)
        width, height = avatar.frame_size
        self._size = stream_size(width, height, max_side)
        self._lock = threading.Lock()
        self._closed = False
        self._gen: Generator[list[np.ndarray], None, None] = engine.render_stream(  # type: ignore[assignment]
            avatar, self._chunks(), sample_rate=AUDIO_RATE
        )

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _chunks(self) -> Iterator[np.ndarray]:
        while True:
            audio, utterance = self._speech.take(TICK_SAMPLES)
            self._fed.append((audio, utterance))
            yield audio

    def speak(self, audio: np.ndarray, utterance: int, append: bool = False) -> None:
        self._speech.put(audio, utterance, append=append)

    def stop(self) -> None:
        self._speech.clear()

    def next_tick(self) -> Tick:
        with self._lock:
            if self._closed:
                raise RuntimeError("the stream is closed")
            n = self._tick
            want = math.floor((n + 0.5) * self._engine_fps / FPS)
            while self._first + len(self._frames) <= want or not self._fed:
                self._frames.extend(next(self._gen))
            while self._first < want:
                self._frames.popleft()
                self._first += 1
            audio, utterance = self._fed.popleft()
            self._tick += 1
            frame = fit_frame(self._frames[0], self._size)
            if self._finish is not None:
                frame = self._finish(frame)
            return Tick(frame, audio, utterance)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._gen.close()
                getattr(self._finish, "close", lambda: None)()


class EngineBackend:
    """Avatars and streams of one registered engine at the server's frame rate and size.

    Args:
        engine: a registered engine name whose class has ``render_stream``.
        options: the engine's ``Options`` (or a dict of its fields; ``None``: defaults).
        max_side: longest side of the streamed frames; portraits are shrunk to it
            before they are analysed, so rendering stays cheap.

        motion_engine: a registered motion engine (``drives == "motion"``) that camera
            driving uses, with its default options; ``None``: no camera driving.
        background: what replaces the background of every streamed frame (read here,
            once); ``None`` or no ``background`` set: frames as the engine made them.

    Each stream gets a fresh ``seed`` (the options' seed plus the stream number) when
    the engine's options have one, so sessions do not blink and sway in step.

    Raises:
        OptionError: unknown engine, bad options, an engine that cannot stream, or a
            ``motion_engine`` that is not a motion engine. MediaError: an unreadable
            background image.
    """

    def __init__(
        self,
        engine: str = "warp",
        options: object = None,
        max_side: int = 512,
        motion_engine: str | None = None,
        background: BackgroundOptions | None = None,
    ) -> None:
        from avatarlab.engines import ENGINES, engine_drives, list_engines, resolve_engine_options
        from avatarlab.engines.base import option_fields

        cls = ENGINES.get(engine)
        if engine_drives(engine) != "speech":
            raise OptionError(f"engine {engine!r} follows a driving face: it cannot speak live")
        self.name = engine
        self.max_side = max_side
        self.options = resolve_engine_options(engine, options)
        self._cls = cls
        self._reseed = "seed" in option_fields(type(self.options))
        self._streams = 0
        self.engine: Engine = cls(self.options)
        wanted = background.background if background is not None else None
        self._background = None if wanted is None else parse_background(wanted)
        self._smoothing = background.mask_smoothing if background is not None else 0.0
        self.motion_engine = motion_engine
        self._motion: Engine | None = None
        self._motion_warm = False
        if motion_engine is not None:
            motion_cls = ENGINES.get(motion_engine)
            if engine_drives(motion_engine) != "motion":
                raise OptionError(
                    f"engine {motion_engine!r} speaks: a camera drives a motion engine "
                    f"({', '.join(list_engines('motion')) or 'none registered'})"
                )
            self._motion = motion_cls(resolve_engine_options(motion_engine, None))

    def _prepare_with(self, engine: Engine, source: Path) -> Any:
        from avatarlab.media import is_image_path, read_image

        if is_image_path(source):
            image = read_image(source)
            h, w = image.shape[:2]
            return engine.prepare(
                np.ascontiguousarray(fit_frame(image, stream_size(w, h, self.max_side)))
            )
        return engine.prepare(source)

    def prepare(self, source: Path) -> Any:
        """Analyse a portrait (shrunk to ``max_side`` first, so rendering stays cheap) or video."""
        return self._prepare_with(self.engine, source)

    def prepare_motion(self, source: Path) -> Any:
        """:meth:`prepare` for the motion engine (camera driving).

        Raises:
            OptionError: the backend has no motion engine.
        """
        if self._motion is None:
            raise OptionError("camera driving is off on this server (no motion engine)")
        avatar = self._prepare_with(self._motion, source)
        if not self._motion_warm:  # one-time set-up (models, caches): ~0.7 s off the 1st frame
            frame = self._first_frame(source)
            for _ in self.open_camera(avatar, (64, 64), iter([(frame, 0.0), (frame, 0.04)])):
                pass
            self._motion_warm = True
        return avatar

    def _first_frame(self, source: Path) -> np.ndarray:
        from avatarlab.media import is_image_path, iter_frames, read_image

        if is_image_path(source):
            image = read_image(source)
            h, w = image.shape[:2]
            return np.ascontiguousarray(fit_frame(image, stream_size(w, h, self.max_side)))
        frame, _ = next(iter(iter_frames(source, end=0.2)))
        return frame

    def open_camera(
        self, avatar: Any, size: tuple[int, int], frames: Iterator[tuple[np.ndarray, float]]
    ) -> Generator[np.ndarray, None, None]:
        """The motion engine over live camera ``(frame, t)`` pairs: one frame at ``size`` each.

        Motion is relative to the first frame with a face; frames without one hold the
        last motion (the engine's live mode).
        """
        from avatarlab.engines.reenact.driver import MotionDriver

        if self._motion is None:
            raise OptionError("camera driving is off on this server (no motion engine)")
        finish = self._finish()
        try:
            for frame in self._motion.render(avatar, MotionDriver(live=frames)):  # type: ignore[arg-type]
                fitted = fit_frame(frame, size)
                yield fitted if finish is None else finish(fitted)
        finally:
            if finish is not None:
                finish.close()

    def _finish(self) -> BackgroundReplacer | None:
        """A fresh background replacer for one stream, or ``None`` without a background."""
        if self._background is None:
            return None
        return BackgroundReplacer(self._background, self._smoothing)

    def open_stream(self, avatar: Any) -> EngineStream:
        """A stream with its own timing (a fresh seed per session when the engine has one)."""
        self._streams += 1
        engine = self.engine
        if self._reseed:
            seed = self.options.seed + self._streams
            engine = self._cls(replace(self.options, seed=seed))
        return EngineStream(engine, avatar, self.max_side, self._finish())
