"""The avatar stream a session plays: speech audio in, one (frame, audio) tick per 1/25 s out.

A session owns one :class:`AvatarStream`. The event loop hands it speech with
:meth:`AvatarStream.speak` (a new utterance replaces the one playing: barge-in) and
a render thread pulls :meth:`AvatarStream.next_tick` once per video frame; between
utterances the stream keeps producing frames of the idling avatar with silent audio.
A :class:`Backend` prepares avatars and opens streams on them; the shipped backend
is any registered engine (:mod:`avatarlab.serve.backend`). While a camera drives the
avatar (:mod:`avatarlab.serve.camera`), its :class:`LiveFrame` outputs replace the
stream's frames.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avatarlab.serve.options import AUDIO_RATE, FPS

TICK_SAMPLES = AUDIO_RATE // FPS
"""Audio samples per video frame (1920 at 48 kHz and 25 fps)."""


@dataclass(frozen=True)
class Tick:
    """One video frame and the audio that plays during it.

    Attributes:
        frame: RGB uint8 ``(H, W, 3)``, even ``H`` and ``W``.
        audio: float32 mono ``(TICK_SAMPLES,)`` in [-1, 1] at ``AUDIO_RATE``.
        utterance: id of the utterance this audio belongs to, ``None`` while idle.
    """

    frame: np.ndarray
    audio: np.ndarray
    utterance: int | None


@dataclass(frozen=True)
class LiveFrame:
    """One avatar frame reenacted from a camera frame.

    Attributes:
        frame: RGB uint8 ``(H, W, 3)`` at the session's stream size.
        arrived: when the camera frame it came from arrived (``time.monotonic``).
        seq: output frame number (0, 1, ...), so a frame held for several ticks is
            known to be the same.
    """

    frame: np.ndarray
    arrived: float
    seq: int


class AvatarStream(Protocol):
    """Per-session renderer. ``speak``/``stop`` come from the event loop, ``next_tick``
    from one render thread; implementations make that safe."""

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames, both even."""
        ...

    def speak(self, audio: np.ndarray, utterance: int, append: bool = False) -> None:
        """Play float32 mono ``audio`` at ``AUDIO_RATE``; replaces what plays unless ``append``."""
        ...

    def stop(self) -> None:
        """Drop the speech not yet rendered; the avatar goes back to idling."""
        ...

    def next_tick(self) -> Tick:
        """Render the next 1/25 s."""
        ...

    def close(self) -> None:
        """Release what the stream holds."""
        ...


class Backend(Protocol):
    """Prepares avatars (slow, once per source) and opens streams on them (fast, per session).

    ``motion_engine`` names the engine a camera drives avatars with (``None``: no camera
    driving); avatars for it are prepared separately (:meth:`prepare_motion`).
    """

    name: str
    motion_engine: str | None

    def prepare(self, source: Path) -> Any:
        """Analyse a portrait or video; raises ``NoFaceError``/``MediaError`` for bad input."""
        ...

    def open_stream(self, avatar: Any) -> AvatarStream:
        """A new stream on a prepared avatar (its own idle motion and speech queue)."""
        ...

    def prepare_motion(self, source: Path) -> Any:
        """Analyse a portrait or video for camera driving (raises like ``prepare``)."""
        ...

    def open_camera(
        self, avatar: Any, size: tuple[int, int], frames: Iterator[tuple[np.ndarray, float]]
    ) -> Generator[np.ndarray, None, None]:
        """One frame at ``size`` (``(width, height)``) per camera ``(frame, t)`` of ``frames``,
        from an avatar of :meth:`prepare_motion`."""
        ...


class SpeechQueue:
    """Thread-safe queue of speech samples, taken a tick at a time (silence when empty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._segments: deque[tuple[np.ndarray, int]] = deque()
        self._pos = 0  # samples of the first segment already taken

    def put(self, audio: np.ndarray, utterance: int, append: bool = False) -> None:
        """Queue ``audio`` (float32 mono at ``AUDIO_RATE``); drop what was queued unless ``append``."""
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        with self._lock:
            if not append:
                self._segments.clear()
                self._pos = 0
            if len(audio):
                self._segments.append((audio, utterance))

    def clear(self) -> None:
        with self._lock:
            self._segments.clear()
            self._pos = 0

    @property
    def pending_s(self) -> float:
        """Seconds of speech still queued."""
        with self._lock:
            total = sum(len(a) for a, _ in self._segments) - self._pos
        return total / AUDIO_RATE

    def take(self, n: int = TICK_SAMPLES) -> tuple[np.ndarray, int | None]:
        """The next ``n`` samples (zero-padded) and the utterance they start in (None: silence)."""
        out = np.zeros(n, np.float32)
        first: int | None = None
        filled = 0
        with self._lock:
            while filled < n and self._segments:
                audio, utterance = self._segments[0]
                k = min(n - filled, len(audio) - self._pos)
                out[filled : filled + k] = audio[self._pos : self._pos + k]
                if first is None:
                    first = utterance
                filled += k
                self._pos += k
                if self._pos >= len(audio):
                    self._segments.popleft()
                    self._pos = 0
        return out, first
