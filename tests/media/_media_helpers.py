"""Small media builders shared by the media tests (synthetic clips made with PyAV)."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest


def ffprobe_frame_times(path: Path) -> np.ndarray:
    """Presentation times (s) of every decoded video frame, as ffprobe reports them."""
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed")
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return np.array([float(line.strip().strip(",")) for line in out.split() if line.strip()])


def pattern_frame(i: int, width: int, height: int) -> np.ndarray:
    """A smooth RGB frame whose mean brightness encodes ``i`` (survives H.264 well)."""
    y, x = np.mgrid[0:height, 0:width]
    base = (20 + 4 * i) % 220
    r = np.full((height, width), base, np.float64)
    g = 60 + 100 * x / max(width - 1, 1)
    b = 60 + 100 * y / max(height - 1, 1)
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def make_clip(
    path: Path,
    times: list[float] | None = None,
    size: tuple[int, int] = (64, 48),
    rotation_ccw: int = 0,
    marker: bool = False,
    time_base: Fraction = Fraction(1, 1000),
) -> Path:
    """Encode a tiny H.264 MP4 with frames at ``times`` (s); optional display rotation.

    With ``marker`` every frame is black with a red 8x8 square at the stored top-left.
    """
    times = times if times is not None else [i / 25 for i in range(10)]
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        if rotation_ccw:
            stream.set_display_rotation(rotation_ccw)
        for i, t in enumerate(times):
            if marker:
                img = np.zeros((h, w, 3), np.uint8)
                img[:8, :8] = (255, 0, 0)
            else:
                img = pattern_frame(i, w, h)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = round(t / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A 0.3-amplitude sine, float32 ``(N,)`` or ``(C, N)``."""
    t = np.arange(int(round(seconds * rate))) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono * (c + 1) / channels for c in range(channels)])


class _PipeOnly:
    """A write-only file object: PyAV sees an unseekable output (a live stream)."""

    def __init__(self, fh: object) -> None:
        self.fh = fh

    def write(self, data: bytes) -> int:
        return self.fh.write(data)  # type: ignore[attr-defined, no-any-return]


def long_opus(path: Path, seconds: int, fmt: str = "ogg", stated: bool = True) -> Path:
    """A mono 48 kHz Opus file of ``seconds`` of a quiet tone at 6 kbps, made fast.

    One second is encoded with libopus and its packets are muxed ``seconds`` times with
    shifted timestamps (an hour takes about 2 s and 2.6 MB, like the issue's upload).
    ``stated=False`` writes to an unseekable stream, so a WebM has no duration in its
    header, as a browser's MediaRecorder produces.
    """
    rate = 48_000
    with path.open("wb") as fh, av.open(fh if stated else _PipeOnly(fh), "w", format=fmt) as out:
        stream = out.add_stream("libopus", rate=rate, layout="mono")
        stream.bit_rate = 6000
        frame = av.AudioFrame.from_ndarray(tone(1.0, rate)[None] / 3, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        second = [(bytes(p), p.pts, p.duration) for p in stream.encode(frame)]
        for i in range(seconds):
            for data, pts, duration in second:
                packet = av.Packet(data)
                packet.pts = packet.dts = pts + i * rate
                packet.duration = duration
                packet.time_base = Fraction(1, rate)
                packet.stream = stream
                out.mux(packet)
    return path


def huge_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit black PNG of ``width`` x ``height``: 16000x16000 is about 100 KB, in 0.3 s."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    deflate = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path
