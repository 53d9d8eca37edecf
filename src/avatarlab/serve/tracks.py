"""Real-time playout of an :class:`AvatarStream` as a WebRTC video track and audio track.

One :class:`MediaPump` per peer renders tick ``n`` in a worker thread shortly before
its play time ``t0 + n / FPS`` and keeps it until both tracks have taken it. Both
tracks hand their frames to aiortc at the play time of their content, on the same
clock: video frame ``n`` at ``t0 + n/25`` with pts ``n * 3600`` (90 kHz), audio
frame ``k`` (20 ms) at ``t0 + k/50`` with pts ``k * 960`` (48 kHz). aiortc stamps
its RTCP sender reports with the wall time at which each RTP timestamp went out,
so the receiver maps both streams onto one clock and plays them in sync.

When rendering falls behind, video skips to the newest frame due (audio never
skips), and after :data:`MAX_BEHIND_S` the clock re-anchors instead of bursting.

While a camera drives the avatar (``pump.live``, a :class:`LiveSource` with a live
camera), the pump does not render the stream: each tick carries silence, and the
video track sends, at each tick's play time, the newest reenacted frame (not the one
current when the tick was made, which would add a tick of latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatarlab.serve.options import AUDIO_FRAME_S, AUDIO_RATE, FPS
from avatarlab.serve.stream import TICK_SAMPLES, AvatarStream, LiveFrame, Tick

log = logging.getLogger("avatarlab.serve")

VIDEO_CLOCK = 90_000
"""RTP clock rate of video (Hz)."""
AUDIO_FRAME_SAMPLES = int(AUDIO_RATE * AUDIO_FRAME_S)
"""Samples per audio frame (960)."""
FRAMES_PER_TICK = TICK_SAMPLES // AUDIO_FRAME_SAMPLES
"""Audio frames per video frame (2)."""
LEAD_TICKS = 1
"""How many ticks ahead of its play time a tick is rendered (render slack, adds latency)."""
MAX_BEHIND_S = 0.2
"""Rendering later than this behind the clock moves the clock instead of bursting frames."""
SKIP_AFTER_S = 0.1
"""Video skips frames only when it is this late (scheduling jitter alone never skips)."""
KEEP_TICKS = 2 * FPS
"""Rendered ticks kept at most (a track that is not read must not grow memory)."""

TickHook = Callable[[int, Tick, float], None]


class LiveSource(Protocol):
    """Frames that replace the stream's while they are live (camera driving)."""

    def current(self, now: float) -> LiveFrame | None:
        """The newest frame, or ``None`` while there is none live (the stream shows)."""
        ...

    def mark_sent(self, frame: LiveFrame, now: float) -> None:
        """``frame`` went to WebRTC at ``now`` (``time.monotonic``)."""
        ...


class MediaPump:
    """Renders a stream in real time for one peer; tracks read frames by index.

    Args:
        stream: the session's avatar stream.
        executor: threads for rendering (``next_tick`` is CPU work).
        on_tick: called on the event loop with ``(index, tick, play_time)`` for each tick
            rendered (``play_time`` on ``time.monotonic``), e.g. for speech events.
        lead: ticks rendered ahead of their play time.
    """

    def __init__(
        self,
        stream: AvatarStream,
        executor: Executor,
        on_tick: TickHook | None = None,
        lead: int = LEAD_TICKS,
    ) -> None:
        self.stream = stream
        self.executor = executor
        self.on_tick = on_tick
        self.lead = lead
        self.t0 = 0.0
        self.rendered = 0
        self.slips = 0
        self.skipped = 0
        self.render_s = 0.0  # total seconds spent in next_tick
        self.stream_ticks = 0  # ticks rendered by the stream (not live)
        self.live: LiveSource | None = None
        self.error: BaseException | None = None
        self._frames: dict[int, np.ndarray] = {}
        self._audio: dict[int, np.ndarray] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start the clock and the render loop (idempotent; called by the first ``recv``)."""
        if self._task is None and not self._closed:
            self.t0 = time.monotonic() + self.lead / FPS
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop rendering; waiting tracks end with ``MediaStreamError``."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        async with self._changed:
            self._changed.notify_all()
        self._frames.clear()
        self._audio.clear()

    def play_time(self, n: int) -> float:
        """``time.monotonic`` at which tick ``n`` plays."""
        return self.t0 + n / FPS

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                n = self.rendered
                await _sleep_until(self.play_time(n - self.lead))
                live = None if self.live is None else self.live.current(time.monotonic())
                if live is not None:  # the camera drives: the stream pauses, audio is silent
                    tick = Tick(live.frame, np.zeros(TICK_SAMPLES, np.float32), None)
                else:
                    started = time.perf_counter()
                    tick = await loop.run_in_executor(self.executor, self.stream.next_tick)
                    self.render_s += time.perf_counter() - started
                    self.stream_ticks += 1
                behind = time.monotonic() - self.play_time(n)
                if behind > MAX_BEHIND_S:
                    self.t0 += behind
                    self.slips += 1
                self._frames[n] = tick.frame
                self._audio[n] = tick.audio
                for old in [i for i in self._frames if i < n - KEEP_TICKS]:
                    del self._frames[old]
                for old in [i for i in self._audio if i < n - KEEP_TICKS]:
                    del self._audio[old]
                self.rendered = n + 1
                async with self._changed:
                    self._changed.notify_all()
                if self.on_tick is not None:
                    self.on_tick(n, tick, self.play_time(n))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken renderer ends this session's media, not the server
            log.exception("rendering failed")
            self.error = exc
            self._closed = True
            async with self._changed:
                self._changed.notify_all()

    async def _wait_rendered(self, n: int) -> None:
        async with self._changed:
            while self.rendered <= n and not self._closed:
                await self._changed.wait()
        if self._closed:
            raise MediaStreamError

    async def video(self, n: int) -> tuple[int, np.ndarray]:
        """Frame ``n`` at its play time, or the newest frame due when ``n`` is over
        :data:`SKIP_AFTER_S` late."""
        self.start()
        await _sleep_until(self.play_time(n))
        await self._wait_rendered(n)
        due = int((time.monotonic() - self.t0 - SKIP_AFTER_S) * FPS)
        m = max(n, min(due, self.rendered - 1))
        self.skipped += m - n
        frame = self._frames.get(m)
        if frame is None:  # dropped as too old: the reader is far behind, take the newest
            m = self.rendered - 1
            frame = self._frames[m]
        for old in [i for i in self._frames if i < m]:
            del self._frames[old]
        if self.live is not None:
            now = time.monotonic()
            live = self.live.current(now)
            if live is not None:
                self.live.mark_sent(live, now)
                frame = live.frame
        return m, frame

    async def audio(self, k: int) -> np.ndarray:
        """Audio frame ``k`` (``AUDIO_FRAME_SAMPLES`` float32) at its play time."""
        self.start()
        n, part = divmod(k, FRAMES_PER_TICK)
        await _sleep_until(self.play_time(n) + part * AUDIO_FRAME_S)
        await self._wait_rendered(n)
        tick_audio = self._audio.get(n)
        if tick_audio is None:  # dropped as too old (reader stalled): play silence
            return np.zeros(AUDIO_FRAME_SAMPLES, np.float32)
        if part == FRAMES_PER_TICK - 1:
            for old in [i for i in self._audio if i <= n]:
                del self._audio[old]
        return tick_audio[part * AUDIO_FRAME_SAMPLES : (part + 1) * AUDIO_FRAME_SAMPLES]


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class AvatarVideoTrack(MediaStreamTrack):
    """The pump's frames as an aiortc video track (RGB frames, 90 kHz pts)."""

    kind = "video"

    def __init__(self, pump: MediaPump) -> None:
        super().__init__()
        self.pump = pump
        self._next = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n, rgb = await self.pump.video(self._next)
        self._next = n + 1
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = n * (VIDEO_CLOCK // FPS)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        return frame


class AvatarAudioTrack(MediaStreamTrack):
    """The pump's audio as an aiortc audio track (20 ms mono s16 frames at 48 kHz)."""

    kind = "audio"

    def __init__(self, pump: MediaPump) -> None:
        super().__init__()
        self.pump = pump
        self._next = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        k = self._next
        samples = await self.pump.audio(k)
        self._next = k + 1
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = k * AUDIO_FRAME_SAMPLES
        frame.time_base = Fraction(1, AUDIO_RATE)
        return frame
