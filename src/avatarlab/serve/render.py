"""One engine's streaming render as an :class:`~avatarlab.serve.stream.AvatarStream`.

:class:`EngineStream` feeds the engine one tick of audio (1/25 s at 48 kHz) at a
time from the session's :class:`SpeechQueue` (silence while nothing is said, so
the portrait keeps blinking and swaying) and pairs each output frame with the audio
of the same time span. The engine emits a frame only once it has heard a little
audio past it (its look-ahead), so the stream feeds ahead as far as needed and
keeps the fed audio until its frame is out: audio and frame of a tick always cover
the same instant. Engines at another frame rate (a 30 fps video avatar) are
resampled in time to 25 fps by taking, for each tick, the frame at its midpoint.
It runs in a server thread or in a worker process (:mod:`avatarlab.serve.worker`).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any

import cv2
import numpy as np

from avatarlab.engines.base import Engine
from avatarlab.serve.options import AUDIO_RATE, FPS
from avatarlab.serve.stream import TICK_SAMPLES, SpeechQueue, Tick

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
