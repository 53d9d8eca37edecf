"""Sessions: one avatar stream, one WebRTC peer and one speech queue per browser tab.

A session turns ``say`` requests into speech (espeak-ng for text, sentence by
sentence so the first words play while the rest is synthesised; decoded audio for
uploads), hands it to its stream (a new utterance interrupts the current one), plays
the stream to its peer through a :class:`MediaPump`, and tells WebSocket listeners
when speech starts and ends. The :class:`SessionManager` caps how many exist and
closes them when their page goes away or they stay silent too long.

A session is driven by speech (the default) or by the viewer's camera
(:meth:`Session.set_drive`): then the camera video the peer sends is reenacted onto
the avatar (:class:`~avatarlab.serve.camera.CameraDrive`) and shown instead of the
talking stream, until the mode is switched back or the camera stops.

A session also listens and answers (:mod:`avatarlab.serve.converse`): the microphone
the peer sends is transcribed offline; in ``echo`` mode the avatar repeats it, in
``chat`` mode a language model answers and each sentence is spoken as it arrives. Its
ticks can also go to an RTMP server and to an MP4 recording
(:mod:`avatarlab.serve.outputs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame
from fastapi import HTTPException

from avatarlab.errors import AvatarLabError
from avatarlab.media import MediaLimitError
from avatarlab.serve.avatars import AvatarCatalog, AvatarEntry
from avatarlab.serve.camera import STALE_S, START_S, CameraDrive, Renderer
from avatarlab.serve.converse import Ears
from avatarlab.serve.options import AUDIO_RATE, FPS, ListenMode, ServeOptions
from avatarlab.serve.outputs import shown_target
from avatarlab.serve.sentences import split_sentences
from avatarlab.serve.stream import AvatarStream, Backend, Tick
from avatarlab.serve.tracks import AvatarAudioTrack, AvatarVideoTrack, MediaPump
from avatarlab.serve.uploads import public_message
from avatarlab.serve.webrtc import add_synced_tracks, answer, media_hosts, new_peer

log = logging.getLogger("avatarlab.serve")

EVENT_QUEUE = 64
"""Events buffered per WebSocket listener; a listener that falls further behind loses old ones."""
WATCH_S = 0.25
"""How often camera driving checks that frames still arrive."""
NO_CHAT = (
    "this server has no language model: start it with --llm URL (an OpenAI-compatible "
    "endpoint such as a llama.cpp server) to chat"
)
END_OF_TURN_S = 0.4
"""Silence after which the viewer's utterance counts as finished and gets its answer (s)."""
STATUS_EVERY_S = 1.0
"""While a camera drives, a ``status`` event (with the latency figures) goes out this often."""

DriveMode = Literal["speech", "camera"]


@dataclass(frozen=True)
class VoiceSettings:
    """How a session's text is spoken: a voice id (``GET /voices``), rate and pitch."""

    voice: str
    rate_wpm: int | None = None
    pitch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"voice": self.voice, "rate_wpm": self.rate_wpm, "pitch": self.pitch}


@dataclass
class Services:
    """What every session of a server shares: thread pools, the chat client, the voices."""

    render_executor: Executor
    tts_executor: Executor
    decode_executor: Executor
    listen_executor: Executor
    chat: Any = None  # avatarlab.serve.llm.ChatClient, or None without --llm
    open_camera: CameraOpener | None = None


CameraOpener = Callable[[AvatarEntry, tuple[int, int]], Awaitable[Renderer]]
"""Prepares an avatar for camera driving and returns its renderer at the given size."""


class RateLimiter:
    """Token bucket: ``burst`` calls at once, refilled at ``per_s`` calls a second."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst = float(burst)
        self.per_s = float(per_s)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.per_s)
        self._stamp = now

    def retry_after(self) -> float:
        """Seconds until a call is allowed (0 when one is allowed now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.per_s

    def consume(self) -> bool:
        """Take one call's token; False (and nothing taken) when none is left."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Session:
    """One viewer's avatar: stream, peer, speech and listeners. Methods run on the event loop."""

    def __init__(
        self,
        avatar: AvatarEntry,
        stream: AvatarStream,
        options: ServeOptions,
        services: Services,
        listen: ListenMode | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.avatar = avatar
        self.stream = stream
        self.options = options
        self.render_executor = services.render_executor
        self.tts_executor = services.tts_executor
        self.decode_executor = services.decode_executor
        open_camera = services.open_camera
        self._decoding = asyncio.Lock()  # one audio decode at a time per session
        self.created = time.monotonic()
        self.last_active = self.created
        self.limiter = RateLimiter(options.say_burst, options.say_per_s)
        self.pc: Any = None
        self.pump: MediaPump | None = None
        self.closed = False
        self.close_reason: str | None = None
        self._listeners: list[asyncio.Queue[dict[str, Any] | None]] = []
        self._next_utterance = 1
        self._current: int | None = None  # utterance last queued
        self._playing: int | None = None  # utterance heard now (by tick play time)
        self._speech_task: asyncio.Task[None] | None = None
        self.utterances = 0
        self.drive: DriveMode = "speech"
        self.open_camera = open_camera
        self.camera: CameraDrive | None = None  # the camera drive in use, or the last one
        self.camera_track: MediaStreamTrack | None = None
        self._camera_reader: asyncio.Task[None] | None = None
        self._camera_watch: asyncio.Task[None] | None = None
        self._drive_lock = asyncio.Lock()
        self.voice = VoiceSettings(options.voice, options.voice_rate, options.voice_pitch)
        self.ears = Ears(
            self,
            services.listen_executor,
            listen or options.listen,
            services.chat,
            _conversation(options) if services.chat is not None else None,
            partial(_new_listener, options),
        )
        self.sinks: list[Any] = []  # avatarlab.serve.outputs.OutputSink: RTMP push, recording

    @property
    def speaking(self) -> bool:
        """Whether the avatar talks now or has speech on its way."""
        return self._playing is not None or self._speech_task is not None

    # -- status and events -------------------------------------------------

    def status(self) -> dict[str, Any]:
        width, height = self.stream.size
        pump = self.pump
        return {
            "id": self.id,
            "avatar": self.avatar.id,
            "width": width,
            "height": height,
            "fps": FPS,
            "audio_rate": AUDIO_RATE,
            "speaking": self._playing is not None,
            "utterance": self._playing,
            "utterances": self.utterances,
            "peer": None if self.pc is None else self.pc.connectionState,
            "frames_rendered": 0 if pump is None else pump.rendered,
            "frames_skipped": 0 if pump is None else pump.skipped,
            "clock_slips": 0 if pump is None else pump.slips,
            "render_ms": 0.0
            if not pump or not pump.stream_ticks
            else 1000 * pump.render_s / pump.stream_ticks,
            "closed": self.closed,
            "idle_timeout_s": self.options.session_timeout_s,
            "drive": self.drive,
            "camera": self.camera_status(),
            "listen": self.ears.status(),
            "voice": self.voice.to_dict(),
            "outputs": [
                {"target": shown_target(sink.target), **sink.stats()} for sink in self.sinks
            ],
        }

    def camera_status(self) -> dict[str, Any]:
        """Camera driving: state and the current (or last) drive's counters and latency."""
        camera = self.camera
        if self.drive != "camera" or camera is None:
            state = "off"
        elif camera.current(time.monotonic()) is not None:
            state = "live"
        else:
            state = "waiting"
        stats = (
            camera.stats()
            if camera is not None
            else {
                "frames_received": 0,
                "frames_dropped": 0,
                "frames_rendered": 0,
                "render_ms": 0.0,
                "latency_ms_p50": None,
                "latency_ms_p90": None,
                "latency_samples": 0,
            }
        )
        return {
            "available": self.open_camera is not None,
            "offered": self.camera_track is not None,
            "state": state,
            **stats,
        }

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of this session's events (``None`` once it closes)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(EVENT_QUEUE)
        self._listeners.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> int:
        """Stop delivering to ``queue``; returns how many listeners remain."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(queue)
        return len(self._listeners)

    def emit(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            if queue.full():  # a stalled listener loses its oldest event, never blocks us
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def _on_tick(self, n: int, tick: Tick, play_time: float) -> None:
        self.ears.played.add(tick.audio, play_time)
        for sink in self.sinks:
            sink.push(tick.frame, tick.audio)
        if tick.utterance == self._playing:
            return
        previous, self._playing = self._playing, tick.utterance
        events = []
        if previous is not None:
            events.append({"type": "speech_end", "utterance": previous})
        if tick.utterance is not None:
            events.append({"type": "speech_start", "utterance": tick.utterance, "frame": n})
            self.ears.first_audio(tick.utterance, play_time)
        delay = max(play_time - time.monotonic(), 0.0)
        loop = asyncio.get_running_loop()
        for event in events:  # deliver when the tick plays, not when it was rendered
            loop.call_later(delay, self.emit, event)

    # -- media ---------------------------------------------------------------

    async def connect(self, offer_sdp: str) -> str:
        """Answer a WebRTC offer; the avatar's video and audio go to that peer."""
        if self.pc is not None:
            raise HTTPException(
                409, "this session already has a media connection: create a new session"
            )
        self.touch()
        pump = MediaPump(self.stream, self.render_executor, on_tick=self._on_tick)
        pc = new_peer()
        add_synced_tracks(pc, [AvatarVideoTrack(pump), AvatarAudioTrack(pump)])
        self.pc, self.pump = pc, pump

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.attach_camera(track)
            elif track.kind == "audio":
                self.ears.attach(track)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            self.emit({"type": "peer", "state": pc.connectionState})
            if pc.connectionState in ("failed", "closed") and not self.closed:
                await self.close(f"media connection {pc.connectionState}")

        try:
            sdp = await answer(pc, offer_sdp, media_hosts(self.options.host))
        except Exception as exc:  # aiortc raises several types for unusable SDP
            self.pc, self.pump = None, None
            pc.remove_all_listeners("connectionstatechange")  # this session lives on
            pc.remove_all_listeners("track")
            await self._stop_camera_reader()
            await self.ears.close()
            await pump.close()
            await pc.close()
            raise HTTPException(400, f"cannot use this SDP offer: {exc}") from None
        self._open_outputs()
        return sdp

    def _open_outputs(self) -> None:
        """Start the RTMP push and the recording the server is configured with."""
        from avatarlab.serve.outputs import OutputSink

        targets: list[str | Path] = []
        if self.options.rtmp is not None:
            targets.append(self.options.rtmp.replace("{session}", self.id))
        if self.options.record is not None:
            targets.append(self.options.record / f"session-{self.id[:12]}.mp4")
        for target in targets:
            self.sinks.append(OutputSink(target, self.stream.size, fps=FPS, audio_rate=AUDIO_RATE))

    # -- camera driving ------------------------------------------------------

    def attach_camera(self, track: MediaStreamTrack) -> None:
        """Read the peer's camera ``track`` (called when its offer sends video).

        Every frame is read as it arrives (so nothing queues up inside aiortc); frames
        go to the camera drive only while the camera drives the avatar.
        """
        if self.camera_track is not None or self.closed:
            return
        self.camera_track = track
        self._camera_reader = asyncio.get_running_loop().create_task(self._read_camera(track))

    async def _read_camera(self, track: MediaStreamTrack) -> None:
        try:
            while not self.closed:
                frame = await track.recv()
                camera = self.camera
                if self.drive == "camera" and camera is not None and isinstance(frame, VideoFrame):
                    camera.push(frame, time.monotonic())
                    self.touch()
        except MediaStreamError:  # the peer's camera track ended
            pass
        if self.drive == "camera" and not self.closed:
            await self._end_camera("the camera track ended")

    async def _stop_camera_reader(self) -> None:
        task, self._camera_reader = self._camera_reader, None
        self.camera_track = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def set_drive(self, mode: DriveMode) -> dict[str, Any]:
        """Switch what drives the avatar; returns the status.

        ``camera``: the camera video of this session's peer is reenacted onto the avatar
        (prepared for the motion engine the first time, which takes a few seconds) and
        replaces the talking stream; speech stops. ``speech``: back to the talking stream.

        Raises:
            HTTPException: 409 when the server has no camera driving or the peer sends
                no video; 422 when the avatar cannot be reenacted.
        """
        async with self._drive_lock:
            if mode == self.drive:
                return self.status()
            if mode == "speech":
                await self._stop_camera("switched to speech")
                return self.status()
            if self.open_camera is None:
                raise HTTPException(
                    409,
                    "this server does not drive avatars with a camera (it has no motion engine)",
                )
            if self.camera_track is None or self.pump is None:
                raise HTTPException(
                    409,
                    "this session's media connection sends no camera video: offer a video "
                    "transceiver with direction sendrecv (the page's 'Drive with my camera' "
                    "does), then switch the drive again",
                )
            render = await self.open_camera(self.avatar, self.stream.size)
            if self.closed:
                raise HTTPException(404, "the session ended while the avatar was prepared")
            self.stop()
            camera = CameraDrive(render, self.options.camera_side)
            self.camera, self.drive = camera, "camera"
            self.pump.live = camera
            self._camera_watch = asyncio.get_running_loop().create_task(self._watch_camera(camera))
            self.emit({"type": "drive", "mode": "camera", "reason": None})
            return self.status()

    async def _end_camera(self, reason: str) -> None:
        async with self._drive_lock:
            await self._stop_camera(reason)

    async def _stop_camera(self, reason: str) -> None:
        """Back to speech (under ``_drive_lock``): the render thread ends, the stream shows."""
        camera = self.camera
        if self.drive != "camera" or camera is None:
            return
        self.drive = "speech"
        if self.pump is not None:
            self.pump.live = None
        watch, self._camera_watch = self._camera_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        # Told before the renderer is closed: the status already says speech.
        self.emit({"type": "drive", "mode": "speech", "reason": reason})
        await asyncio.get_running_loop().run_in_executor(None, camera.close)
        self.touch()
        self.emit({"type": "status", **self.status()})

    async def _watch_camera(self, camera: CameraDrive) -> None:
        """End camera driving when frames stop or the renderer fails; post status each second."""
        last_status = time.monotonic()
        while self.camera is camera and self.drive == "camera":
            await asyncio.sleep(WATCH_S)
            now = time.monotonic()
            if camera.error is not None:
                message = public_message(str(camera.error), self.avatar.path, self.avatar.name)
                reason = f"camera driving failed: {message}"
            elif camera.last_arrival is None and now - camera.started > START_S:
                reason = f"no camera frame arrived within {START_S:g} s"
            elif camera.last_arrival is not None and now - camera.last_arrival > STALE_S:
                reason = "the camera stopped sending frames"
            else:
                if now - last_status >= STATUS_EVERY_S:
                    last_status = now
                    self.emit({"type": "status", **self.status()})
                continue
            await self._end_camera(reason)
            return

    # -- listening and answering --------------------------------------------

    def set_listen(self, mode: ListenMode) -> dict[str, Any]:
        """Switch listening: ``off``, ``echo`` (repeat what is heard) or ``chat``.

        Raises:
            HTTPException: 409 for ``chat`` on a server without a language model.
        """
        if mode == "chat" and self.ears.chat is None:
            raise HTTPException(409, NO_CHAT)
        self.ears.set_mode(mode)
        self.touch()
        return self.status()

    async def chat_text(self, text: str) -> None:
        """Typed chat: the language model answers ``text`` and the avatar speaks the reply.

        Raises:
            HTTPException: 409 without a language model or while the camera drives.
        """
        self.require_speech()
        if self.ears.chat is None:
            raise HTTPException(409, NO_CHAT)
        self.touch()
        await self.ears.chat_text(text)

    def set_voice(self, voice: VoiceSettings) -> dict[str, Any]:
        """Speak text (typed, echoed or answered) with ``voice`` from now on."""
        self.voice = voice
        self.touch()
        return self.status()

    # -- speech --------------------------------------------------------------

    def require_speech(self) -> None:
        """409 while the camera drives the avatar (speech would not be seen or heard)."""
        if self.drive == "camera":
            raise HTTPException(
                409,
                "the camera drives this avatar now: POST /sessions/{id}/drive "
                '{"mode": "speech"} before making it speak',
            )

    def touch(self) -> None:
        self.last_active = time.monotonic()

    def _cancel_pending(self) -> None:
        if self._speech_task is not None:
            self._speech_task.cancel()
            self._speech_task = None

    def _new_utterance(self) -> tuple[int, int | None]:
        """Start a new utterance (it interrupts the one playing); ``(id, interrupted id)``."""
        interrupted = self._playing
        self._cancel_pending()
        uid = self._next_utterance
        self._next_utterance += 1
        self._current = uid
        self.utterances += 1
        self.touch()
        return uid, interrupted

    async def say_text(self, text: str, voice: str) -> dict[str, Any]:
        """Speak ``text``: the first sentence is synthesised before this returns (a voice
        error leaves the current speech alone), the rest follows in the background and is
        dropped if another utterance interrupts."""
        self.require_speech()
        pieces = split_sentences(text)
        if not pieces:
            raise HTTPException(422, "text has nothing to say (only spaces or punctuation)")
        first = await self._synthesize(pieces[0], voice)
        if self.closed:
            raise HTTPException(404, "the session ended while the speech was synthesised")
        uid, interrupted = self._new_utterance()
        self.stream.speak(first, uid)
        if len(pieces) > 1:
            self._speech_task = asyncio.get_running_loop().create_task(
                self._speak_rest(uid, pieces[1:], voice)
            )
        self.emit({"type": "queued", "utterance": uid, "sentences": len(pieces)})
        return {"utterance": uid, "interrupted": interrupted, "sentences": len(pieces)}

    async def _speak_rest(self, uid: int, pieces: list[str], voice: str) -> None:
        try:
            for piece in pieces:
                audio = await self._synthesize(piece, voice)
                if self._current != uid or self.closed:
                    return
                self.stream.speak(audio, uid, append=True)
        except HTTPException as exc:
            self.emit({"type": "error", "utterance": uid, "message": str(exc.detail)})

    async def say_stream(self, sentences: AsyncIterator[str], source: str) -> int | None:
        """Speak sentences as they arrive (an answer still being written): the first one
        starts a new utterance (interrupting the current one), the rest are appended;
        ends early when another utterance takes over. Returns the utterance id (None when
        nothing was said)."""
        uid: int | None = None
        async for sentence in sentences:
            for piece in split_sentences(sentence):
                if self.closed or self.drive == "camera":
                    return uid
                try:
                    audio = await self._synthesize(piece, self.voice.voice)
                except HTTPException as exc:
                    self.emit({"type": "error", "utterance": uid, "message": str(exc.detail)})
                    return uid
                if self.closed or (uid is not None and self._current != uid):
                    return uid
                if uid is None:
                    uid, _ = self._new_utterance()
                    self.stream.speak(audio, uid)
                    self.emit({"type": "queued", "utterance": uid, "source": source})
                else:
                    self.stream.speak(audio, uid, append=True)
        return uid

    async def _synthesize(self, text: str, voice: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        settings = self.voice
        try:
            return await loop.run_in_executor(
                self.tts_executor,
                synthesize_48k,
                text,
                voice,
                settings.rate_wpm,
                settings.pitch,
            )
        except AvatarLabError as exc:
            raise HTTPException(422, f"cannot speak this text: {exc}") from None

    async def decode_audio(self, path: Path, name: str) -> np.ndarray:
        """Decode an uploaded audio file (``name``: the client's file name, for messages).

        Uploads decode in a pool with one worker per session slot and at most one decode
        per session at a time, so a session's long upload never delays another session's
        speech (text synthesis has its own thread).
        """
        async with self._decoding:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self.decode_executor, decode_speech, path, self.options.max_audio_s, name
            )

    def say_audio(self, audio: np.ndarray) -> dict[str, Any]:
        """Speak decoded float32 mono audio at ``AUDIO_RATE``."""
        self.require_speech()
        uid, interrupted = self._new_utterance()
        self.stream.speak(audio, uid)
        seconds = len(audio) / AUDIO_RATE
        self.emit({"type": "queued", "utterance": uid, "seconds": seconds})
        return {"utterance": uid, "interrupted": interrupted, "seconds": seconds}

    def stop(self) -> None:
        """Silence the avatar now (what is already rendered still plays, < 0.2 s)."""
        self._cancel_pending()
        self._current = None
        self.stream.stop()
        self.touch()

    # -- lifetime ------------------------------------------------------------

    async def close(self, reason: str) -> None:
        """Stop media, drop the peer, tell listeners; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._cancel_pending()
        await self.ears.close()
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, sink.close)
        async with self._drive_lock:
            camera, self.drive = self.camera, "speech"
            if self._camera_watch is not None:
                self._camera_watch.cancel()
            if camera is not None:
                await asyncio.get_running_loop().run_in_executor(None, camera.close)
        await self._stop_camera_reader()
        if self.pump is not None:
            await self.pump.close()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
        with contextlib.suppress(Exception):  # waits for a tick still rendering
            await asyncio.get_running_loop().run_in_executor(
                self.render_executor, self.stream.close
            )
        self.avatar.sessions -= 1
        await asyncio.get_running_loop().run_in_executor(self.render_executor, release_memory)
        self.emit({"type": "closed", "reason": reason})
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)


def release_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so a long-running
    server's resident size follows its live sessions instead of its busiest moment."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def synthesize_48k(
    text: str, voice: str, rate_wpm: int | None = None, pitch: int | None = None
) -> np.ndarray:
    """Speech for ``text`` in ``voice`` (espeak-ng, or a Piper voice id) as float32 mono
    at ``AUDIO_RATE``."""
    from avatarlab.media import resample
    from avatarlab.speech import synthesize

    utterance = synthesize(text, voice=voice, rate_wpm=rate_wpm, pitch=pitch, with_phones=False)
    return resample(utterance.audio, utterance.sample_rate, AUDIO_RATE)


def check_voice(settings: VoiceSettings) -> None:
    """422 unless ``settings`` can speak: a voice of the catalogue (never a file path a
    client names), rate and pitch in range for it."""
    from avatarlab.speech.voices import find_voice

    try:
        find_voice(settings.voice)
        synthesize_48k("ok", settings.voice, settings.rate_wpm, settings.pitch)
    except AvatarLabError as exc:
        raise HTTPException(422, f"cannot use this voice: {exc}") from None


def voice_list() -> list[Any]:
    """Every voice a session can use (``GET /voices``)."""
    from avatarlab.speech import voice_catalog

    return list(voice_catalog())


def preload_listening() -> None:
    """Build one speech recogniser ahead of the first utterance (about 0.4 s of CPU)."""
    from avatarlab.speech.listen import preload_decoders

    preload_decoders(1)


def _new_listener(options: ServeOptions) -> Any:
    """A fresh microphone listener at the WebRTC audio rate."""
    from avatarlab.speech.listen import Listener, ListenOptions

    return Listener(sample_rate=AUDIO_RATE, options=ListenOptions(min_silence_s=END_OF_TURN_S))


def _conversation(options: ServeOptions) -> Any:
    from avatarlab.serve.llm import Conversation

    llm = options.llm_options()
    return Conversation(llm.system_prompt, llm.max_history)


def decode_speech(path: Path, max_seconds: float, name: str) -> np.ndarray:
    """Decode an uploaded audio file to float32 mono at ``AUDIO_RATE`` (422 when unusable).

    Audio longer than ``max_seconds`` is refused from its header, or once decoding passes
    the limit, so memory stays bounded whatever the file claims. Messages name the upload
    by ``name`` (the client's file name), never by its path on the server.
    """
    from avatarlab.media import read_audio

    try:
        audio = read_audio(path, sample_rate=AUDIO_RATE, max_seconds=max_seconds)
    except MediaLimitError as exc:
        raise HTTPException(
            422, f"audio upload too long: {public_message(str(exc), path, name)}"
        ) from None
    except AvatarLabError as exc:
        raise HTTPException(
            422, f"cannot decode the audio upload: {public_message(str(exc), path, name)}"
        ) from None
    if not np.isfinite(audio).all():
        raise HTTPException(422, "the audio upload decodes to invalid samples (NaN/inf)")
    return audio


class SessionManager:
    """Creates, finds and reaps sessions; at most ``options.max_sessions`` at once."""

    def __init__(
        self,
        options: ServeOptions,
        backend: Backend,
        catalog: AvatarCatalog,
        render_executor: Executor,
        tts_executor: Executor,
        chat: Any = None,
    ) -> None:
        self.options = options
        self.backend = backend
        self.catalog = catalog
        self.render_executor = render_executor
        self.tts_executor = tts_executor
        # Uploads decode here: a worker per session slot, one decode per session at a time.
        self.decode_executor = ThreadPoolExecutor(
            max_workers=options.max_sessions, thread_name_prefix="decode"
        )
        # Microphones are transcribed here (a session waits for its chunk before the next).
        self.listen_executor = ThreadPoolExecutor(
            max_workers=options.max_sessions, thread_name_prefix="listen"
        )
        self.chat = chat
        self.sessions: dict[str, Session] = {}
        self._creating = 0
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def create(self, avatar_id: str | None, listen: ListenMode | None = None) -> Session:
        """A new session on ``avatar_id`` (the server's default avatar when None), listening
        as ``listen`` says (the server's ``listen`` option when None)."""
        if listen == "chat" and self.chat is None:
            raise HTTPException(409, NO_CHAT)
        entry = self.catalog.get(avatar_id) if avatar_id else self.catalog.default
        if entry is None:
            known = ", ".join(e.id for e in self.catalog.list()) or "none: upload one first"
            raise HTTPException(404, f"unknown avatar {avatar_id!r}; available: {known}")
        if len(self.sessions) + self._creating >= self.options.max_sessions:
            raise HTTPException(
                503,
                f"the server already runs {self.options.max_sessions} sessions: close one or retry later",
            )
        self._creating += 1
        try:
            try:
                prepared = await self.catalog.prepare(entry)
            except AvatarLabError as exc:
                message = public_message(str(exc), entry.path, entry.name)
                raise HTTPException(422, f"cannot use avatar {entry.id!r}: {message}") from None
            loop = asyncio.get_running_loop()
            stream = await loop.run_in_executor(
                self.render_executor, self.backend.open_stream, prepared
            )
            entry.sessions += 1
            services = Services(
                self.render_executor,
                self.tts_executor,
                self.decode_executor,
                self.listen_executor,
                self.chat,
                self.open_camera if self.camera else None,
            )
            session = Session(entry, stream, self.options, services, listen)
            self.sessions[session.id] = session
            return session
        finally:
            self._creating -= 1

    @property
    def camera(self) -> bool:
        """Whether sessions can be driven by a camera."""
        return self.options.camera and self.backend.motion_engine is not None

    async def open_camera(self, entry: AvatarEntry, size: tuple[int, int]) -> Renderer:
        """The camera renderer of ``entry`` at ``size`` (its motion avatar prepared once).

        Raises:
            HTTPException: 422 when the avatar cannot be reenacted.
        """
        try:
            prepared = await self.catalog.prepare_motion(entry)
        except AvatarLabError as exc:
            message = public_message(str(exc), entry.path, entry.name)
            raise HTTPException(
                422, f"cannot drive avatar {entry.id!r} with a camera: {message}"
            ) from None
        return partial(self.backend.open_camera, prepared, size)

    def get(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise HTTPException(
                404, f"no session {session_id!r}: it ended or never existed; create a new one"
            )
        return session

    async def close(self, session_id: str, reason: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await session.close(reason)

    async def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for session_id in list(self.sessions):
            await self.close(session_id, "server shutting down")
        self.decode_executor.shutdown(wait=False, cancel_futures=True)
        self.listen_executor.shutdown(wait=False, cancel_futures=True)
        if self.chat is not None:
            with contextlib.suppress(Exception):
                await self.chat.aclose()

    async def _reap(self) -> None:
        period = min(max(self.options.session_timeout_s / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.closed:  # closed by its peer or renderer
                    self.sessions.pop(session.id, None)
                elif now - session.last_active > self.options.session_timeout_s:
                    await self.close(session.id, "silent for too long")
                elif session.pump is not None and session.pump.error is not None:
                    await self.close(session.id, f"rendering failed: {session.pump.error}")
