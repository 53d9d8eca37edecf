"""A placeholder avatar backend for the server's API tests (never shipped).

Frames are tiny and computed, not rendered by an engine: a grey picture whose
"mouth" bar grows with the loudness of the tick's audio and whose "idle" marker
column moves every tick, so tests can tell speech from idling cheaply. Camera
driving paints each output frame in the mean colour of its camera frame.
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab.errors import NoFaceError
from avatarlab.serve.stream import SpeechQueue, Tick

SIZE = (64, 48)  # width, height


class FakeStream:
    def __init__(self) -> None:
        self.speech = SpeechQueue()
        self.n = 0
        self.closed = False

    @property
    def size(self) -> tuple[int, int]:
        return SIZE

    def speak(self, audio: np.ndarray, utterance: int, append: bool = False) -> None:
        self.speech.put(audio, utterance, append=append)

    def stop(self) -> None:
        self.speech.clear()

    def next_tick(self) -> Tick:
        audio, utterance = self.speech.take()
        w, h = SIZE
        frame = np.full((h, w, 3), 60, np.uint8)
        frame[:, self.n % w] = 200  # idle motion
        level = float(np.sqrt(np.mean(audio**2)))
        mouth = min(int(level * 200), h // 2)
        frame[h // 2 : h // 2 + mouth, w // 4 : 3 * w // 4] = 20
        self.n += 1
        return Tick(frame, audio, utterance)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeCamera:
    """What one camera renderer saw: frames taken, and whether it was closed."""

    frames: int = 0
    closed: bool = False


class FakeBackend:
    name = "fake"
    motion_engine: str | None = "fake-motion"

    def __init__(self, render_s: float = 0.0) -> None:
        self.prepared: list[Path] = []
        self.motion_prepared: list[Path] = []
        self.cameras: list[FakeCamera] = []
        self.render_s = render_s

    def prepare_motion(self, source: Path) -> Any:
        self.motion_prepared.append(source)
        return source

    def open_camera(
        self, avatar: Any, size: tuple[int, int], frames: Iterator[tuple[np.ndarray, float]]
    ) -> Generator[np.ndarray, None, None]:
        import time

        camera = FakeCamera()
        self.cameras.append(camera)
        try:
            for frame, _ in frames:
                camera.frames += 1
                if self.render_s:
                    time.sleep(self.render_s)
                out = np.empty((size[1], size[0], 3), np.uint8)
                out[:] = frame.reshape(-1, 3).mean(axis=0).astype(np.uint8)
                yield out
        finally:
            camera.closed = True

    def prepare(self, source: Path) -> Any:
        if b"NOFACE" in source.read_bytes():
            raise NoFaceError(f"no face found in {source.name}: use a picture with a face")
        self.prepared.append(source)
        return source

    def open_stream(self, avatar: Any) -> FakeStream:
        return FakeStream()


def png_bytes(width: int = 8, height: int = 8, marker: bytes = b"") -> bytes:
    """A valid PNG (optionally with a text chunk ``marker``) without extra dependencies."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
    png = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    )
    if marker:
        png += chunk(b"tEXt", b"note\x00" + marker)
    return png + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def wav_bytes(seconds: float, rate: int = 16_000, freq: float = 220.0) -> bytes:
    """A mono 16-bit WAV of a sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * math.pi * freq * t) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
