"""A Python client of the live server: opens a session, receives its media, makes it speak.

Used by the tests and ``bench/serve.py``, and usable to record a session from a
program. Every received frame is kept with its arrival time (``time.monotonic``),
decoded: video as RGB uint8 ``(H, W, 3)`` (optionally only every k-th, to bound
memory), audio as float32 mono at 48 kHz. A :class:`FramesTrack` plays frames as a
camera, for sessions driven by a camera (``start(camera=...)``, ``drive("camera")``);
a :class:`SpeechTrack` plays audio as a microphone, for sessions that listen
(``start(mic=..., listen="echo")``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, cast

import av
import httpx
import numpy as np
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatarlab.serve.webrtc import ice_hosts, new_peer


@dataclass
class Received:
    """What a client got: per frame its arrival time and content.

    Attributes:
        video_times: arrival time of every video frame (s, ``time.monotonic``).
        video_pts: each frame's RTP timestamp in seconds (90 kHz clock, random origin).
        audio_pts: each audio frame's RTP timestamp in seconds (48 kHz clock, random origin).
        frames: kept frames ``(index, RGB uint8 (H, W, 3))``, every ``keep_every``-th.
        audio_times: arrival time of every audio frame.
        audio: float32 mono sample blocks, one per audio frame.
        audio_rate: sample rate of ``audio`` (Hz).
    """

    video_times: list[float] = field(default_factory=list)
    video_pts: list[float] = field(default_factory=list)
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)
    audio_times: list[float] = field(default_factory=list)
    audio_pts: list[float] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_rate: int = 48_000

    def first_video_after(self, t: float) -> float | None:
        """Arrival time of the first video frame after ``t`` (None if none yet)."""
        return next((v for v in self.video_times if v > t), None)


class FramesTrack(MediaStreamTrack):
    """Frames played as a camera: RGB uint8 ``(H, W, 3)`` arrays at ``fps``, looped.

    Until :meth:`play` the first frame is shown still (a camera pointed at a still
    face), so a session switched to camera driving takes it as its reference. Ends
    (``MediaStreamError``) after ``max_frames`` frames or on :meth:`stop`.

    Attributes:
        sent: ``(time.monotonic, index into frames)`` of every frame handed to WebRTC.
    """

    kind = "video"

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 25.0, max_frames: int = 3000):
        super().__init__()
        if not frames:
            raise ValueError("FramesTrack needs at least one frame")
        self.frames = [np.ascontiguousarray(f) for f in frames]
        self.fps = fps
        self.max_frames = max_frames
        self.sent: list[tuple[float, int]] = []
        self._count = 0
        self._start: float | None = None
        self._playing_from: int | None = None  # frame count at which play() was called

    def play(self) -> None:
        """Start moving through the frames (from the first), looping."""
        self._playing_from = self._count

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or self._count >= self.max_frames:
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._count / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        index = 0
        if self._playing_from is not None:
            index = (self._count - self._playing_from) % len(self.frames)
        frame = av.VideoFrame.from_ndarray(self.frames[index], format="rgb24")
        frame.pts = self._count * round(90_000 / self.fps)
        frame.time_base = Fraction(1, 90_000)
        self.sent.append((time.monotonic(), index))
        self._count += 1
        return frame


class SpeechTrack(MediaStreamTrack):
    """Audio played as a microphone: silence until :meth:`play`, in 20 ms frames at 48 kHz.

    Attributes:
        played: ``(time.monotonic of its first sample, time of its last, samples)`` for
            each :meth:`play`, so a caller knows when its speech went out.
    """

    kind = "audio"
    RATE = 48_000
    FRAME = 960

    def __init__(self, max_s: float = 600.0) -> None:
        super().__init__()
        self._queue: list[np.ndarray] = []
        self._pos = 0
        self._count = 0
        self._start: float | None = None
        self.max_frames = int(max_s * self.RATE / self.FRAME)
        self.played: list[tuple[float, float, int]] = []
        self._clip_start: float | None = None

    def play(self, audio: np.ndarray) -> None:
        """Queue float32 mono ``audio`` at 48 kHz after what is queued."""
        clip = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self._queue.append(clip)

    @property
    def busy(self) -> bool:
        """Whether queued audio is still playing."""
        return bool(self._queue)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live" or self._count >= self.max_frames:
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        deadline = self._start + self._count * self.FRAME / self.RATE
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        out = np.zeros(self.FRAME, np.float32)
        filled = 0
        while filled < self.FRAME and self._queue:
            clip = self._queue[0]
            if self._pos == 0:
                self._clip_start = deadline + filled / self.RATE
            k = min(self.FRAME - filled, len(clip) - self._pos)
            out[filled : filled + k] = clip[self._pos : self._pos + k]
            filled += k
            self._pos += k
            if self._pos >= len(clip):
                end = deadline + filled / self.RATE
                self.played.append((self._clip_start or end, end, len(clip)))
                self._queue.pop(0)
                self._pos = 0
        pcm = (np.clip(out, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.RATE
        frame.pts = self._count * self.FRAME
        frame.time_base = Fraction(1, self.RATE)
        self._count += 1
        return frame


class AvatarClient:
    """One session on a running server, watched over WebRTC on the given host addresses.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8010``.
        token: bearer token when the server has one.
        ice: local addresses to offer for media (loopback by default).
        keep_every: keep every k-th decoded video frame (0: keep none, only times).
        keep_scale: kept frames are resized by this factor (< 1 saves memory).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        ice: tuple[str, ...] | None = ("127.0.0.1",),
        keep_every: int = 1,
        keep_scale: float = 1.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0)
        self.ice = ice
        self.keep_every = keep_every
        self.keep_scale = keep_scale
        self.session: dict[str, Any] = {}
        self.received = Received()
        self.pc = new_peer()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> AvatarClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(
        self,
        avatar: str | None = None,
        camera: MediaStreamTrack | None = None,
        mic: MediaStreamTrack | None = None,
        listen: str | None = None,
    ) -> dict[str, Any]:
        """Create a session and connect its media; returns the session's status.

        With ``camera`` the video goes both ways: ``camera`` is sent to the server,
        which shows it on the avatar after :meth:`drive` ``("camera")``. With ``mic``
        the audio goes both ways: the server listens to it (``listen``: ``echo`` or
        ``chat``; the server's default when None).
        """
        body: dict[str, Any] = {"avatar": avatar}
        if listen is not None:
            body["listen"] = listen
        response = await self.http.post("/sessions", json=body)
        response.raise_for_status()
        self.session = response.json()
        if camera is not None:
            self.pc.addTransceiver(camera, direction="sendrecv")
        else:
            self.pc.addTransceiver("video", direction="recvonly")
        if mic is not None:
            self.pc.addTransceiver(mic, direction="sendrecv")
        else:
            self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            reader = self._read_video if track.kind == "video" else self._read_audio
            self._tasks.append(asyncio.ensure_future(reader(track)))

        with ice_hosts(self.ice):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        response = await self.http.post(
            f"/sessions/{self.session['id']}/offer",
            json={"sdp": self.pc.localDescription.sdp, "type": "offer"},
        )
        response.raise_for_status()
        answer = response.json()
        with ice_hosts(self.ice):
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return self.session

    async def say(self, text: str) -> httpx.Response:
        """``POST /sessions/{id}/say`` with ``text``; returns the response (202 on success)."""
        return await self.http.post(f"/sessions/{self.session['id']}/say", json={"text": text})

    async def chat(self, text: str) -> httpx.Response:
        """``POST /sessions/{id}/chat`` with ``text`` (202: the model's answer will be spoken)."""
        return await self.http.post(f"/sessions/{self.session['id']}/chat", json={"text": text})

    async def listen(self, mode: str) -> httpx.Response:
        """``POST /sessions/{id}/listen`` with ``mode`` (``off``, ``echo``, ``chat``)."""
        return await self.http.post(f"/sessions/{self.session['id']}/listen", json={"mode": mode})

    async def drive(self, mode: str) -> httpx.Response:
        """``POST /sessions/{id}/drive`` with ``mode`` (``camera`` or ``speech``)."""
        return await self.http.post(f"/sessions/{self.session['id']}/drive", json={"mode": mode})

    async def status(self) -> dict[str, Any]:
        """``GET /sessions/{id}``."""
        response = await self.http.get(f"/sessions/{self.session['id']}")
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    async def wait_frames(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` video frames have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received.video_times) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {len(self.received.video_times)} of {count} video frames in {timeout} s"
                )
            await asyncio.sleep(0.02)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = cast(av.VideoFrame, await track.recv())
                now = time.monotonic()
                rec = self.received
                index = len(rec.video_times)
                rec.video_times.append(now)
                rec.video_pts.append(float((frame.pts or 0) * (frame.time_base or 0)))
                if self.keep_every and index % self.keep_every == 0:
                    if self.keep_scale != 1.0:
                        width = max(2, int(frame.width * self.keep_scale))
                        height = max(2, int(frame.height * self.keep_scale))
                        frame = frame.reformat(width=width, height=height)
                    rec.frames.append((index, frame.to_ndarray(format="rgb24")))

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = cast(av.AudioFrame, await track.recv())
                now = time.monotonic()
                pcm = frame.to_ndarray().astype(np.float32) / 32768.0
                channels = len(frame.layout.channels)
                mono = (
                    pcm.reshape(-1, channels).mean(axis=1)
                    if pcm.shape[0] == 1
                    else pcm.mean(axis=0)
                )
                self.received.audio_times.append(now)
                self.received.audio_pts.append(float((frame.pts or 0) * (frame.time_base or 0)))
                self.received.audio.append(mono.astype(np.float32))
                self.received.audio_rate = frame.sample_rate

    async def close(self, delete: bool = True) -> None:
        """Stop receiving, close the peer connection and (by default) delete the session."""
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        if delete and self.session:
            with contextlib.suppress(httpx.HTTPError):
                await self.http.delete(f"/sessions/{self.session['id']}")
        await self.http.aclose()
