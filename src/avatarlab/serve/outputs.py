"""Outputs of a live session besides WebRTC: an RTMP/RTMPS push and an MP4 recording.

An :class:`OutputSink` takes the session's ticks (one RGB frame and 1/``fps`` s of mono
audio each) on the event loop and encodes them to H.264 + AAC in its own thread, so a
slow encoder or a dead server never holds up the session.

Conventions:
- Frames are RGB uint8 ``(H, W, 3)`` at the sink's ``size`` (even sides); audio is float32
  mono ``(audio_rate // fps,)`` in [-1, 1]. Arrays are not copied: do not modify them after
  :meth:`OutputSink.push`.
- Timestamps come from the tick index, never from a clock: on each connection (or file)
  video pts is ``n - n0`` in ``1/fps`` and audio pts is ``(n - n0) * samples_per_tick``,
  where ``n0`` is the connection's first tick, so audio and video stay aligned exactly.
  Ticks lost in between (a full queue) become a gap in the video and silence in the audio.
- RTMP goes through Python sockets, not FFmpeg's network code: PyAV holds the GIL while
  FFmpeg connects (DNS, TCP and the RTMP handshake), which would freeze the whole server
  for as long as a slow or unreachable host takes. PyAV muxes FLV into memory and this
  module sends its tags as RTMP messages over a socket with timeouts, which
  :meth:`OutputSink.close` can also shut from outside to end a stuck send at once.
- ``rtmps://`` verifies the server's certificate against the system's CA store (or the
  file named by ``SSL_CERT_FILE``, for a private ingest server) and its host name.
- A lost connection is retried with exponential backoff (0.5 s doubling up to
  ``max_backoff_s``, +-20 % jitter); each new connection starts a fresh stream (header,
  keyframe, timestamps from 0) with the current ticks; the ticks of the outage are dropped.
- Recordings appear only when complete: they are written to a temporary file beside the
  target and renamed on close.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from avatarlab._util import atomic_output
from avatarlab.errors import MediaError, OptionError
from avatarlab.media.writer import X264_PRESETS

log = logging.getLogger("avatarlab.serve")

#: Frames up to this many pixels are encoded on the sink's own thread: 512x512 at 25 fps
#: takes about a quarter of one core with "veryfast", and one thread per output keeps many
#: sessions from oversubscribing the CPU. Larger frames let x264 pick its thread count.
SINGLE_THREAD_PIXELS = 1280 * 720
#: Seconds between keyframes: what RTMP ingest servers (YouTube, Twitch) ask for.
KEYFRAME_S = 2
#: First wait before reconnecting (seconds); doubles on each failure up to ``max_backoff_s``.
BACKOFF_START_S = 0.5
#: Relative jitter of each backoff wait, so many sessions do not reconnect in lockstep.
BACKOFF_JITTER = 0.2
#: A connection that stayed live this long resets the backoff to its start.
STABLE_S = 5.0
#: Longest wait for the server during connecting and each send (seconds).
NET_TIMEOUT_S = 5.0
#: Chunk size announced to the RTMP server (bytes per chunk of a message).
RTMP_CHUNK = 4096
#: Default TCP ports of the two schemes.
RTMP_PORTS = {"rtmp": 1935, "rtmps": 443}
#: Sample rates the AAC encoder takes.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)

STATES = ("connecting", "live", "reconnecting", "closed", "failed")
"""Values of ``stats()["state"]``."""


# -- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RtmpUrl:
    """``scheme://host[:port]/app/stream_key``, split as FFmpeg splits it."""

    scheme: str
    host: str
    port: int
    app: str
    key: str

    @property
    def tc_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.app}"


def _is_url(target: str) -> bool:
    return "://" in target


def _parse_rtmp(target: str) -> _RtmpUrl:
    """Split an RTMP URL; the app is the first path part (two when there are three or
    more), the stream key the rest, query included (FFmpeg's rule)."""
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError:
        raise OptionError(
            f"{shown_target(target)} is not a valid URL: check the host and port"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in RTMP_PORTS:
        raise OptionError(
            f"cannot send to {scheme}:// URLs: give an rtmp:// or rtmps:// URL or an .mp4 file"
        )
    if not parts.hostname:
        raise OptionError(f"{shown_target(target)} has no host: write rtmp://HOST/APP/STREAM_KEY")
    names = [p for p in parts.path.split("/") if p]
    if len(names) < 2:
        raise OptionError(
            f"{shown_target(target)} needs an app and a stream key: write {scheme}://HOST/APP/STREAM_KEY"
        )
    split = 1 if len(names) == 2 else 2
    key = "/".join(names[split:]) + (f"?{parts.query}" if parts.query else "")
    return _RtmpUrl(
        scheme, parts.hostname, port or RTMP_PORTS[scheme], "/".join(names[:split]), key
    )


def shown_target(target: str) -> str:
    """``target`` as clients may see it: a URL without its path (an RTMP stream key is a
    password), a file by its name only (not where the server keeps it)."""
    if not _is_url(target):
        return Path(target).name
    scheme, rest = target.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/..."


def check_target(target: str) -> str:
    """Validate an output target before a session starts; returns it normalised.

    ``target`` is an ``rtmp://`` or ``rtmps://`` URL with an app and a stream key
    (``rtmp://a.rtmp.youtube.com/live2/KEY``), or an ``.mp4`` path in an existing,
    writable folder (checked by creating and removing a temporary file there).

    Raises:
        OptionError: another scheme, a URL without app or key, another extension, a
            folder as the file, or a folder that is missing or not writable.
    """
    text = str(target).strip()
    if _is_url(text):
        _parse_rtmp(text)
        return text
    path = Path(text).expanduser()
    if path.suffix.lower() != ".mp4":
        raise OptionError(
            f"cannot record to {path}: give an .mp4 file name or an rtmp:// / rtmps:// URL"
        )
    if path.is_dir():
        raise OptionError(f"{path} is a folder: give a file name such as {path / 'session.mp4'}")
    folder = path.parent
    if not folder.is_dir():
        raise OptionError(f"cannot record to {path}: the folder {folder} does not exist; create it")
    try:
        fd, probe = tempfile.mkstemp(prefix=".avatarlab-check-", dir=folder)
    except OSError as exc:
        raise OptionError(
            f"cannot record to {path}: {folder} is not writable ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return str(path)


# -- encoding ------------------------------------------------------------------------------


class _Encoder:
    """H.264 + AAC streams on one container; tick ``n`` of it has video pts ``n - n0``."""

    def __init__(self, container: Any, sink: OutputSink) -> None:
        self.container = container
        self.samples = sink.samples_per_tick
        width, height = sink.size
        gop = KEYFRAME_S * sink.fps
        kbit = max(1, sink.video_bitrate // 1000)
        video = container.add_stream("libx264", rate=sink.fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.bit_rate = sink.video_bitrate
        video.time_base = Fraction(1, sink.fps)
        video.codec_context.time_base = Fraction(1, sink.fps)
        video.codec_context.gop_size = gop
        video.codec_context.thread_count = 1 if width * height <= SINGLE_THREAD_PIXELS else 0
        video.options = {
            "preset": sink.preset,
            "tune": "zerolatency",
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:vbv-maxrate={kbit}:vbv-bufsize={kbit}"
            ),
        }
        audio = container.add_stream(
            "aac", rate=sink.audio_rate, layout="mono" if sink.channels == 1 else "stereo"
        )
        audio.bit_rate = sink.audio_bitrate
        audio.time_base = Fraction(1, sink.audio_rate)
        self.video, self.audio = video, audio
        self.layout = audio.layout.name
        self.rate = sink.audio_rate
        self.channels = sink.channels
        self.n0: int | None = None
        self.next = 0  # tick index expected next (relative to n0)

    def encode(self, n: int, frame: np.ndarray, audio: np.ndarray) -> None:
        """Encode tick ``n`` and mux its packets; missing ticks before it become silence."""
        if self.n0 is None:
            self.n0 = n
        i = n - self.n0
        if i > self.next:
            self._audio(np.zeros((i - self.next) * self.samples, np.float32), self.next)
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = i
        vf.time_base = self.video.codec_context.time_base
        self.container.mux(self.video.encode(vf))
        self._audio(audio, i)
        self.next = i + 1

    def _audio(self, samples: np.ndarray, tick: int) -> None:
        planar = np.broadcast_to(samples, (self.channels, samples.shape[0]))
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planar, dtype=np.float32), format="fltp", layout=self.layout
        )
        af.sample_rate = self.rate
        af.pts = tick * self.samples
        af.time_base = Fraction(1, self.rate)
        self.container.mux(self.audio.encode(af))  # PyAV re-frames to AAC's 1024 samples

    def flush(self) -> None:
        """Drain both encoders into the container."""
        self.container.mux(self.video.encode(None))
        self.container.mux(self.audio.encode(None))


class _Bytes:
    """A write-only, unseekable file for PyAV: collects what the FLV muxer writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        out, self.data = bytes(self.data), bytearray()
        return out


# -- RTMP ----------------------------------------------------------------------------------


class RtmpError(MediaError):
    """The RTMP server refused the stream or broke the protocol."""


class _Closed(Exception):
    """The sink was closed while connecting."""


def _amf(value: Any) -> bytes:
    """AMF0 encoding of a number, bool, string, None or dict (an object)."""
    if isinstance(value, bool):
        return b"\x01" + bytes([value])
    if isinstance(value, (int, float)):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        return b"\x02" + struct.pack(">H", len(raw)) + raw
    if value is None:
        return b"\x05"
    if isinstance(value, dict):
        body = b"".join(
            struct.pack(">H", len(k.encode())) + k.encode() + _amf(v) for k, v in value.items()
        )
        return b"\x03" + body + b"\x00\x00\x09"
    raise TypeError(f"no AMF0 encoding for {type(value).__name__}")


def _amf_values(data: bytes) -> list[Any]:
    """Decode a sequence of AMF0 values (numbers, bools, strings, objects, arrays, null)."""
    out: list[Any] = []
    pos = 0

    def string(long: bool = False) -> str:
        nonlocal pos
        size = struct.unpack_from(">I" if long else ">H", data, pos)[0]
        pos += 4 if long else 2
        text = data[pos : pos + size].decode("utf-8", "replace")
        pos += size
        return text

    def pairs() -> dict[str, Any]:
        nonlocal pos
        obj: dict[str, Any] = {}
        while pos + 3 <= len(data) and data[pos : pos + 3] != b"\x00\x00\x09":
            key = string()
            obj[key] = value()
        pos += 3
        return obj

    def value() -> Any:
        nonlocal pos
        marker = data[pos]
        pos += 1
        if marker == 0x00:
            pos += 8
            return struct.unpack_from(">d", data, pos - 8)[0]
        if marker == 0x01:
            pos += 1
            return bool(data[pos - 1])
        if marker in (0x02, 0x0C):
            return string(long=marker == 0x0C)
        if marker == 0x03:
            return pairs()
        if marker == 0x08:
            pos += 4
            return pairs()
        if marker == 0x0A:
            count = struct.unpack_from(">I", data, pos)[0]
            pos += 4
            return [value() for _ in range(count)]
        if marker in (0x05, 0x06):
            return None
        raise RtmpError(f"the RTMP server sent AMF0 type {marker:#x}, which is not understood")

    while pos < len(data):
        out.append(value())
    return out


def _chunks(csid: int, timestamp: int, kind: int, stream: int, payload: bytes) -> bytes:
    """One RTMP message as chunks of ``RTMP_CHUNK`` bytes (type-0 header, then type-3)."""
    ts = min(timestamp, 0xFFFFFF)
    ext = struct.pack(">I", timestamp & 0xFFFFFFFF) if ts == 0xFFFFFF else b""
    head = bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big")
    parts = [head + bytes([kind]) + struct.pack("<I", stream) + ext, payload[:RTMP_CHUNK]]
    for start in range(RTMP_CHUNK, len(payload), RTMP_CHUNK):
        parts += [bytes([0xC0 | csid]) + ext, payload[start : start + RTMP_CHUNK]]
    return b"".join(parts)


_CSID_CONTROL, _CSID_COMMAND, _CSID_AUDIO, _CSID_VIDEO, _CSID_DATA = 2, 3, 4, 6, 5
_FLV_HEADER = 13  # "FLV", version, flags, header size (9 bytes) + PreviousTagSize0 (4)
_SET_DATA_FRAME = _amf("@setDataFrame")
_GOODBYE_S = 0.5  # longest a closing connection waits for the server to hang up


class _RtmpPublisher:
    """One publishing RTMP connection: handshake, ``connect``/``createStream``/``publish``,
    then FLV tags sent as RTMP messages. Every socket wait is bounded by ``timeout``."""

    def __init__(self, url: _RtmpUrl, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.stream_id = 0
        self.flv = bytearray()
        self.flv_started = False
        self._in_chunk = 128
        self._in_headers: dict[int, list[int]] = {}  # csid -> [timestamp, length, type, stream]
        self._in_parts: dict[int, bytearray] = {}
        self._received = 0
        self._acked = 0
        self._window = 2_500_000
        self._recv_buffer = bytearray()
        self._deadline = 0.0  # when open() gives up waiting for the server

    # -- connection --
    def open(self, cancel: threading.Event) -> None:
        raw = socket.create_connection((self.url.host, self.url.port), timeout=self.timeout)
        sock: socket.socket = raw
        if self.url.scheme == "rtmps":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.url.host)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        if cancel.is_set():
            raise _Closed
        self._deadline = time.monotonic() + 2 * self.timeout
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        sock.sendall(b"\x03" + c1)
        s0s1s2 = self._read_exact(1 + 1536 * 2)
        if s0s1s2[0] != 3:
            raise RtmpError(f"the server answered with RTMP version {s0s1s2[0]}, not 3")
        sock.sendall(s0s1s2[1:1537])  # C2 echoes S1
        self._send(_CSID_CONTROL, 1, 0, struct.pack(">I", RTMP_CHUNK))  # set chunk size
        connect = {
            "app": self.url.app,
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; avatarlab)",
            "tcUrl": self.url.tc_url,
        }
        self._command("connect", 1, connect)
        self._wait_result(1, cancel)
        self._command("releaseStream", 2, None, self.url.key)
        self._command("FCPublish", 3, None, self.url.key)
        self._command("createStream", 4, None)
        result = self._wait_result(4, cancel)
        self.stream_id = int(result[3]) if len(result) > 3 and result[3] else 1
        self._command("publish", 5, None, self.url.key, "live", stream=self.stream_id)
        while True:
            values = self._next_command(cancel)
            if values and values[0] == "onStatus":
                info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                code = str(info.get("code", ""))
                if code == "NetStream.Publish.Start":
                    return
                if info.get("level") == "error" or "Failed" in code or "Bad" in code:
                    raise RtmpError(f"the server refused to publish the stream ({code})")

    def abort(self) -> None:
        """Unblock a send or receive in progress from another thread (the socket fails)."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        deadline = time.monotonic() + _GOODBYE_S
        with contextlib.suppress(OSError):
            sock.settimeout(_GOODBYE_S)
            if self.stream_id:
                self._command("FCUnpublish", 6, None, self.url.key, sock=sock)
                self._command("deleteStream", 7, None, self.stream_id, sock=sock)
            sock.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline and sock.recv(65536):
                pass  # read to the server's end, so closing does not reset the connection
        with contextlib.suppress(OSError):
            sock.close()

    # -- sending --
    def _send(
        self, csid: int, kind: int, timestamp: int, payload: bytes, stream: int = 0,
        sock: socket.socket | None = None,
    ) -> None:  # fmt: skip
        target = sock or self.sock
        if target is None:
            raise ConnectionError("the RTMP connection is closed")
        target.sendall(_chunks(csid, timestamp, kind, stream, payload))

    def _command(
        self, name: str, txn: int, *args: Any, stream: int = 0, sock: socket.socket | None = None
    ) -> None:
        payload = _amf(name) + _amf(txn) + b"".join(_amf(a) for a in args)
        self._send(_CSID_COMMAND, 20, 0, payload, stream=stream, sock=sock)

    def send_flv(self, data: bytes) -> None:
        """Send the complete FLV tags in ``data`` (plus what earlier calls left over)."""
        self.flv += data
        if not self.flv_started:
            if len(self.flv) < _FLV_HEADER:
                return
            del self.flv[:_FLV_HEADER]
            self.flv_started = True
        out: list[bytes] = []
        pos = 0
        while len(self.flv) - pos >= 11:
            kind = self.flv[pos]
            size = int.from_bytes(self.flv[pos + 1 : pos + 4], "big")
            if len(self.flv) - pos < 11 + size + 4:
                break
            ts = int.from_bytes(self.flv[pos + 4 : pos + 7], "big") | (self.flv[pos + 7] << 24)
            body = bytes(self.flv[pos + 11 : pos + 11 + size])
            pos += 11 + size + 4
            if kind == 18:
                out.append(_chunks(_CSID_DATA, ts, 18, self.stream_id, _SET_DATA_FRAME + body))
            elif kind in (8, 9):
                csid = _CSID_AUDIO if kind == 8 else _CSID_VIDEO
                out.append(_chunks(csid, ts, kind, self.stream_id, body))
        del self.flv[:pos]
        if out:
            if self.sock is None:
                raise ConnectionError("the RTMP connection is closed")
            self.sock.sendall(b"".join(out))
        self.poll()

    # -- receiving --
    def poll(self) -> None:
        """Handle what the server sent meanwhile (acknowledgements, pings, errors)."""
        assert self.sock is not None
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                if not data:
                    raise ConnectionResetError("the RTMP server closed the connection")
                self._recv_buffer += data
        finally:
            self.sock.settimeout(self.timeout)
        while (message := self._parse_message()) is not None:
            self._handle(*message)

    def _read_exact(self, size: int) -> bytes:
        assert self.sock is not None
        while len(self._recv_buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("the RTMP server closed the connection")
            self._recv_buffer += data
        out = bytes(self._recv_buffer[:size])
        del self._recv_buffer[:size]
        return out

    def _parse_message(self) -> tuple[int, bytes] | None:
        """The next complete message ``(type, payload)`` in the receive buffer, or None."""
        buf = self._recv_buffer
        while buf:
            fmt, csid = buf[0] >> 6, buf[0] & 0x3F
            pos = 1
            if csid in (0, 1):
                if len(buf) < pos + csid + 1:
                    return None
                csid = 64 + buf[1] + (buf[2] * 256 if csid == 1 else 0)
                pos += 1 if buf[0] & 0x3F == 0 else 2
            size = (11, 7, 3, 0)[fmt]
            if len(buf) < pos + size:
                return None
            header = self._in_headers.get(csid, [0, 0, 0, 0])
            if fmt <= 2:
                header[0] = int.from_bytes(buf[pos : pos + 3], "big")
            if fmt <= 1:
                header[1] = int.from_bytes(buf[pos + 3 : pos + 6], "big")
                header[2] = buf[pos + 6]
            if fmt == 0:
                header[3] = int.from_bytes(buf[pos + 7 : pos + 11], "little")
            pos += size
            if header[0] == 0xFFFFFF:
                pos += 4
            part = self._in_parts.get(csid, bytearray())
            take = min(self._in_chunk, header[1] - len(part))
            if len(buf) < pos + take:
                return None
            self._in_headers[csid] = header
            part += buf[pos : pos + take]
            del buf[: pos + take]
            self._received += pos + take
            if len(part) < header[1]:
                self._in_parts[csid] = part
                continue
            self._in_parts.pop(csid, None)
            return header[2], bytes(part)
        return None

    def _handle(self, kind: int, payload: bytes) -> list[Any] | None:
        """Act on a control message; returns the values of a command message."""
        if kind == 1 and len(payload) >= 4:
            self._in_chunk = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
        elif kind == 5 and len(payload) >= 4:
            self._window = struct.unpack(">I", payload[:4])[0]
        elif kind == 4 and len(payload) >= 6 and struct.unpack(">H", payload[:2])[0] == 6:
            self._send(_CSID_CONTROL, 4, 0, struct.pack(">H", 7) + payload[2:6])  # ping reply
        elif kind == 20:
            values = _amf_values(payload)
            if values and values[0] == "onStatus" and self.flv_started:
                info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                if info.get("level") == "error":
                    raise RtmpError(f"the server stopped the stream ({info.get('code', '')})")
            return values
        if self._window and self._received - self._acked >= self._window // 2:
            self._acked = self._received
            self._send(_CSID_CONTROL, 3, 0, struct.pack(">I", self._received & 0xFFFFFFFF))
        return None

    def _next_command(self, cancel: threading.Event) -> list[Any]:
        """Wait (bounded by the socket timeout) for the next command message."""
        while not cancel.is_set():
            if time.monotonic() > self._deadline:
                raise RtmpError(
                    f"the server did not accept the stream within {2 * self.timeout:.0f} s"
                )
            message = self._parse_message()
            if message is None:
                assert self.sock is not None
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionResetError("the RTMP server closed the connection")
                self._recv_buffer += data
                continue
            values = self._handle(*message)
            if values is not None:
                return values
        raise _Closed

    def _wait_result(self, txn: int, cancel: threading.Event) -> list[Any]:
        while True:
            values = self._next_command(cancel)
            if len(values) > 1 and values[1] == txn:
                if values[0] == "_error":
                    info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                    reason = info.get("description") or info.get("code") or "no reason given"
                    raise RtmpError(f"the RTMP server refused the connection ({reason})")
                if values[0] == "_result":
                    return values


# -- the sink ------------------------------------------------------------------------------


@dataclass
class _Item:
    n: int
    frame: np.ndarray
    audio: np.ndarray


class OutputSink:
    """Encodes ticks to H.264 + AAC in a background thread and sends them to an RTMP/RTMPS
    URL (FLV) or writes an MP4 file (``+faststart``).

    Args:
        target: ``rtmp://HOST/APP/STREAM_KEY``, ``rtmps://...`` or an ``.mp4`` path
            (see :func:`check_target`).
        size: ``(width, height)`` of the frames, both even.
        fps: ticks per second.
        audio_rate: sample rate of the tick audio (Hz); ``audio_rate / fps`` samples a tick.
        video_bitrate, audio_bitrate: encoder targets (bits/second); the video also caps
            its rate at ``video_bitrate`` over one second (VBV), as live ingest expects.
        reconnect: retry a failed or lost RTMP connection (with backoff) until closed.
        max_backoff_s: longest wait between two connection attempts.
        queue_s: ticks waiting for the encoder, in seconds; beyond it the oldest are dropped.
        channels: AAC channels (1 mono, 2 stereo: the mono tick audio on both).
        preset: x264 speed preset; "ultrafast" takes about half the CPU of "veryfast"
            for a visibly softer picture at the same bit rate.

    ``push`` never blocks and never raises for network or encoder trouble: those show in
    :meth:`stats` (``state``, ``last_error``) and in the log.
    """

    def __init__(
        self,
        target: str | Path,
        size: tuple[int, int],
        fps: int = 25,
        audio_rate: int = 48_000,
        video_bitrate: int = 1_500_000,
        audio_bitrate: int = 128_000,
        reconnect: bool = True,
        max_backoff_s: float = 10.0,
        queue_s: float = 2.0,
        channels: int = 1,
        preset: str = "veryfast",
    ) -> None:
        self.target = check_target(str(target))
        width, height = (int(v) for v in size)
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise OptionError(f"output size must be even and at least 2x2, got {width}x{height}")
        if fps <= 0 or audio_rate % fps:
            raise OptionError(f"audio_rate {audio_rate} must be a whole multiple of fps {fps}")
        if audio_rate not in AAC_RATES:
            raise OptionError(f"AAC cannot encode {audio_rate} Hz: use one of {AAC_RATES}")
        if video_bitrate <= 0 or audio_bitrate <= 0:
            raise OptionError("video_bitrate and audio_bitrate must be positive (bits/second)")
        if preset not in X264_PRESETS:
            raise OptionError(f"preset {preset!r} is not an x264 preset: use one of {X264_PRESETS}")
        if channels not in (1, 2):
            raise OptionError(f"channels must be 1 or 2, got {channels}")
        if max_backoff_s < BACKOFF_START_S or queue_s <= 0:
            raise OptionError(
                f"max_backoff_s must be at least {BACKOFF_START_S} and queue_s positive"
            )
        self.size = (width, height)
        self.fps = int(fps)
        self.audio_rate = int(audio_rate)
        self.samples_per_tick = self.audio_rate // self.fps
        self.video_bitrate = int(video_bitrate)
        self.audio_bitrate = int(audio_bitrate)
        self.channels = channels
        self.preset = preset
        self.reconnect = reconnect
        self.max_backoff_s = float(max_backoff_s)
        self.is_stream = _is_url(self.target)
        self._url = _parse_rtmp(self.target) if self.is_stream else None
        self._queue: deque[_Item] = deque()
        self._capacity = max(1, round(queue_s * self.fps))
        self._lock = threading.Condition()
        self._closing = threading.Event()  # stop taking ticks, finish what is queued
        self._abort = threading.Event()  # stop now: drop the queue, end the connection
        self._publisher: _RtmpPublisher | None = None
        self._pushed = 0
        self._sent = 0
        self._dropped = 0
        self._reconnects = 0
        self._failures = 0
        self._state = "connecting"
        self._last_error: str | None = None
        self._was_live = False  # a connection was live before: the next one is a reconnect
        self._encode_s = 0.0  # thread CPU seconds spent encoding and sending
        self._thread = threading.Thread(
            target=self._run, name=f"output {shown_target(self.target)}", daemon=True
        )
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------
    def push(self, frame: np.ndarray, audio: np.ndarray) -> None:
        """Queue one tick: RGB uint8 ``(H, W, 3)`` at ``size`` and float32 mono audio of
        ``samples_per_tick``; returns at once. A full queue drops its oldest tick.

        Raises:
            MediaError: the frame or audio has the wrong shape or type (a caller bug).
        """
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise MediaError(
                f"output frames must be uint8 {self.size[1]}x{self.size[0]}x3, "
                f"got {frame.dtype} {frame.shape}"
            )
        if audio.shape != (self.samples_per_tick,):
            raise MediaError(
                f"output audio must be mono ({self.samples_per_tick},) a tick, got {audio.shape}"
            )
        with self._lock:
            if self._closing.is_set():
                return
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(_Item(self._pushed, frame, audio))
            self._pushed += 1
            self._lock.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Encode what is queued, finish the stream or file, and stop; returns within
        ``timeout`` seconds. What is still queued then is dropped; a recording is kept
        with the ticks encoded so far. No connection is attempted after this."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closing.set()
            self._lock.notify_all()
        self._thread.join(max(0.0, timeout - min(0.5, timeout / 4)))
        if self._thread.is_alive():
            self._abort.set()
            publisher = self._publisher
            if publisher is not None:
                publisher.abort()
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("output %s did not stop within %.1f s", shown_target(self.target), timeout)

    def stats(self) -> dict[str, Any]:
        """``state`` (one of :data:`STATES`), ``frames_sent``, ``frames_dropped`` (queue
        overflow, outages, close), ``reconnects`` (connections made after a loss),
        ``connect_failures``, ``last_error`` (None or one sentence), ``cpu_s`` (CPU
        seconds the sink's thread spent encoding and sending: all of the sink's CPU for
        frames up to :data:`SINGLE_THREAD_PIXELS`, x264's own threads not counted above)."""
        with self._lock:
            return {
                "state": self._state,
                "frames_sent": self._sent,
                "frames_dropped": self._dropped,
                "reconnects": self._reconnects,
                "connect_failures": self._failures,
                "last_error": self._last_error,
                "cpu_s": round(self._encode_s, 3),
            }

    # -- worker side ---------------------------------------------------------------------
    def _set(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error

    def _take(self) -> _Item | None:
        """The next queued tick; None once closing with nothing left (or aborted)."""
        with self._lock:
            while not self._queue:
                if self._closing.is_set() or self._abort.is_set():
                    return None
                self._lock.wait(0.25)
            if self._abort.is_set():
                return None
            return self._queue.popleft()

    def _drop_queued(self, keep: int) -> None:
        """Drop queued ticks but the newest ``keep`` (they date from an outage)."""
        with self._lock:
            while len(self._queue) > keep:
                self._queue.popleft()
                self._dropped += 1

    def _encode_all(self, encoder: _Encoder, after: Any = None) -> None:
        """Encode ticks until closed; ``after()`` runs after each (sends the bytes)."""
        while (item := self._take()) is not None:
            started = time.thread_time()
            try:
                encoder.encode(item.n, item.frame, item.audio)
                if after is not None:
                    after()
            except BaseException:
                with self._lock:
                    self._dropped += 1  # lost with the connection
                raise
            self._encode_s += time.thread_time() - started
            with self._lock:
                self._sent += 1

    def _run(self) -> None:
        try:
            if self.is_stream:
                self._run_stream()
            else:
                self._run_file()
        except Exception as exc:  # never let an output take the session down
            log.warning("output %s failed: %s", shown_target(self.target), _reason(exc))
            self._set("failed", _reason(exc))
        else:
            self._set("closed")
        finally:
            self._drop_queued(0)

    def _run_file(self) -> None:
        self._set("live")
        with atomic_output(self.target) as tmp:
            container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
            try:
                encoder = _Encoder(container, self)
                self._encode_all(encoder)
                if self._sent == 0:
                    raise MediaError(f"no ticks reached {self.target}: nothing was recorded")
                encoder.flush()
            finally:
                container.close()

    def _run_stream(self) -> None:
        assert self._url is not None
        attempt = 0
        lost = False
        while not self._closing.is_set():
            if lost:
                self._set("reconnecting")
            started = time.monotonic()
            try:
                self._stream_once(drop_backlog=lost or attempt > 0)
                return  # closed normally
            except _Closed:
                return
            except Exception as exc:
                if self._abort.is_set():
                    return
                if isinstance(exc, (av.FFmpegError, MediaError)) and not isinstance(exc, RtmpError):
                    raise  # the encoder, not the network: trying again would not help
                reason = _reason(exc)
                with self._lock:
                    was_live = self._state == "live"
                    self._failures += 0 if was_live else 1
                log.log(
                    logging.WARNING if was_live or reason != self._last_error else logging.DEBUG,
                    "output %s: %s%s",
                    shown_target(self.target),
                    "connection lost: " if was_live else "cannot connect: ",
                    reason,
                )
                self._set("reconnecting" if (lost or was_live) else "connecting", reason)
                lost = lost or was_live
                if not self.reconnect:
                    raise
            if time.monotonic() - started >= STABLE_S:
                attempt = 0
            wait = min(self.max_backoff_s, BACKOFF_START_S * 2**attempt)
            attempt += 1
            wait *= 1 + random.uniform(-BACKOFF_JITTER, BACKOFF_JITTER)
            self._drop_queued(keep=1)
            if self._closing.wait(wait):
                return

    def _stream_once(self, drop_backlog: bool) -> None:
        """Connect, publish until closed; raises on any connection trouble."""
        assert self._url is not None
        publisher = _RtmpPublisher(self._url, NET_TIMEOUT_S)
        self._publisher = publisher
        try:
            if self._abort.is_set():
                raise _Closed
            publisher.open(self._abort)
            out = _Bytes()
            container = av.open(out, "w", format="flv", container_options={"flush_packets": "1"})
            try:
                encoder = _Encoder(container, self)
                container.start_encoding()
                publisher.send_flv(out.take())
                if drop_backlog:
                    self._drop_queued(keep=1)
                with self._lock:
                    self._reconnects += self._was_live
                    self._was_live = True
                    self._state = "live"
                log.info("output %s is live", shown_target(self.target))
                self._encode_all(encoder, after=lambda: publisher.send_flv(out.take()))
                if not self._abort.is_set():
                    encoder.flush()
                    publisher.send_flv(out.take())
            finally:
                with contextlib.suppress(Exception):
                    container.close()
        finally:
            self._publisher = None
            publisher.close()


def _reason(exc: BaseException) -> str:
    """One sentence for the log and ``stats``: no traceback, no URL (it holds the key)."""
    if isinstance(exc, av.FFmpegError):
        return f"the encoder failed: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, socket.timeout):
        return f"the server did not answer within {NET_TIMEOUT_S:.0f} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate was refused ({exc.verify_message})"
    if isinstance(exc, socket.gaierror):
        return f"the host name could not be resolved ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror).lower()
    return str(exc) or type(exc).__name__
