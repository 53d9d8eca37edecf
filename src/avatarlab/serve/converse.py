"""Talking with the avatar: the viewer's microphone in, an answer out.

The page sends its microphone over the session's WebRTC connection (an audio
track beside the camera's video). :class:`Ears` reads that track all the time (so
nothing queues inside aiortc) and, while the session listens, hands it in 40 ms
chunks to a :class:`~avatarlab.speech.listen.Listener` (Silero voice activity and
streaming PocketSphinx, offline) together with what the avatar played over the same
span, so the avatar's own voice coming back through the viewer's speakers is not
taken for the viewer's. What the listener reports becomes session events
(``hearing``, ``heard``) and actions:

- the viewer starts speaking while the avatar talks: the avatar stops (barge-in by
  voice) and an answer still being written is dropped;
- ``echo`` mode: the avatar repeats what it heard (LiveTalking's echo mode);
- ``chat`` mode: what it heard goes to the language model
  (:mod:`avatarlab.serve.llm`, any OpenAI-compatible endpoint); the reply is cut
  into sentences as it streams in and each sentence is spoken as soon as it is
  complete. A failing or silent endpoint gets a short spoken apology; the session
  lives on.

Typed chat (``POST /sessions/{id}/chat``) takes the same path as a heard utterance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatarlab.serve.options import AUDIO_RATE, ListenMode

if TYPE_CHECKING:
    from avatarlab.serve.llm import ChatClient, Conversation
    from avatarlab.speech.listen import Listener, ListenEvent

log = logging.getLogger("avatarlab.serve")

MIC_CHUNK_S = 0.04
"""Microphone audio handed to the listener at once (seconds)."""
PLAYED_KEEP_S = 3.0
"""The avatar's played audio kept for the echo check (seconds)."""
APOLOGY = "Sorry, I cannot answer that right now."
"""Spoken when the language model fails or does not answer in time."""


class Mouth(Protocol):
    """The session as :class:`Ears` sees it."""

    closed: bool

    @property
    def speaking(self) -> bool: ...

    def emit(self, event: dict[str, Any]) -> None: ...

    def stop(self) -> None: ...

    def touch(self) -> None: ...

    async def say_stream(self, sentences: AsyncIterator[str], source: str) -> int | None: ...


class PlayedAudio:
    """The avatar's audio by the time it plays (``time.monotonic``), for echo checks."""

    def __init__(self, rate: int = AUDIO_RATE, keep_s: float = PLAYED_KEEP_S) -> None:
        self.rate = rate
        self._keep = int(keep_s * rate)
        self._ticks: deque[tuple[float, np.ndarray]] = deque()
        self._loud = 0.0  # last play time of audible audio

    def add(self, audio: np.ndarray, play_time: float) -> None:
        """One tick of played audio starting at ``play_time``."""
        self._ticks.append((play_time, audio))
        if float(np.abs(audio).max(initial=0.0)) > 1e-3:
            self._loud = play_time + len(audio) / self.rate
        while sum(len(a) for _, a in self._ticks) > self._keep:
            self._ticks.popleft()

    def loud_until(self) -> float:
        """When the last audible avatar audio ended (``time.monotonic``)."""
        return self._loud

    def span(self, start: float, n: int) -> np.ndarray:
        """``n`` samples of what played from ``start`` on (silence where nothing is known)."""
        out = np.zeros(n, np.float32)
        for t, audio in self._ticks:
            offset = int(round((t - start) * self.rate))
            lo, hi = max(offset, 0), min(offset + len(audio), n)
            if lo < hi:
                out[lo:hi] = audio[lo - offset : hi - offset]
        return out


def mic_samples(frame: av.AudioFrame, resampler: av.AudioResampler) -> np.ndarray:
    """A WebRTC audio frame as float32 mono at ``AUDIO_RATE``."""
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


class Ears:
    """Listening and answering for one session (methods run on the event loop).

    Args:
        mouth: the session (events, stop, speech).
        executor: threads the listener runs in (recognition is CPU work).
        mode: ``off``, ``echo`` or ``chat``.
        chat: the language model client shared by the server (``None``: no chat).
        conversation: this session's chat history.
        listener_factory: makes the session's listener (called on first use).
    """

    def __init__(
        self,
        mouth: Mouth,
        executor: Executor,
        mode: ListenMode = "off",
        chat: ChatClient | None = None,
        conversation: Conversation | None = None,
        listener_factory: Any = None,
    ) -> None:
        self.mouth = mouth
        self.executor = executor
        self.mode: ListenMode = mode
        self.chat = chat
        self.conversation = conversation
        self._factory = listener_factory
        self._listener: Listener | None = None
        self.played = PlayedAudio()
        self.track: MediaStreamTrack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reply: asyncio.Task[None] | None = None
        self.heard = 0  # utterances recognised
        self.barge_ins = 0
        self.last_heard: str | None = None
        self.last_latency_s: float | None = None  # end of the viewer's speech -> first reply audio
        self._heard_end: float | None = None  # monotonic time the last utterance ended
        self._answer_uid: int | None = None
        self._t0: float | None = None  # monotonic time of listener stream time 0
        self._samples = 0  # samples pushed to the listener

    # -- state ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "microphone": self.track is not None,
            "chat": self.chat is not None,
            "heard": self.heard,
            "barge_ins": self.barge_ins,
            "last_heard": self.last_heard,
            "reply_latency_s": self.last_latency_s,
        }

    def set_mode(self, mode: ListenMode) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        self._cancel_reply()
        if self._listener is not None:
            self._listener.reset()
        self.mouth.emit({"type": "listen", "mode": mode})

    # -- microphone ----------------------------------------------------------

    def attach(self, track: MediaStreamTrack) -> None:
        """Read the peer's microphone ``track`` (called when its offer sends audio)."""
        if self.track is not None or self.mouth.closed:
            return
        self.track = track
        self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        chunk: list[np.ndarray] = []
        have = 0
        need = int(MIC_CHUNK_S * AUDIO_RATE)
        try:
            while not self.mouth.closed:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                if self.mode == "off":
                    chunk, have = [], 0
                    continue
                samples = mic_samples(frame, resampler)
                chunk.append(samples)
                have += len(samples)
                if have >= need:
                    audio = np.concatenate(chunk)
                    chunk, have = [], 0
                    await self._hear(audio, time.monotonic())
        except MediaStreamError:  # the peer's microphone ended
            pass
        except Exception:  # a broken recogniser ends listening, not the session
            log.exception("listening failed")
            self.mouth.emit({"type": "error", "message": "listening failed; it is now off"})
            self.mode = "off"

    async def _hear(self, audio: np.ndarray, arrived: float) -> None:
        """Push one chunk that ended arriving at ``arrived`` and act on what was heard."""
        if self._listener is None:
            self._listener = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._factory
            )
        start = arrived - len(audio) / AUDIO_RATE
        if self._t0 is None:
            self._t0 = start - self._samples / AUDIO_RATE
        played = self.played.span(start, len(audio))
        listener = self._listener
        assert listener is not None
        events = await asyncio.get_running_loop().run_in_executor(
            self.executor, listener.push, audio, played if played.any() else None
        )
        self._samples += len(audio)
        for event in events:
            await self.on_event(event)

    async def on_event(self, event: ListenEvent) -> None:
        """Act on one listener event (public for tests that feed events directly)."""
        mouth = self.mouth
        if self.mode == "off":  # switched off while the chunk was being recognised
            return
        if event.kind == "speech_start":
            mouth.touch()
            if mouth.speaking or self._reply is not None:
                self.barge_ins += 1
                self._cancel_reply()
                mouth.stop()
                mouth.emit({"type": "barge_in"})
            mouth.emit({"type": "hearing", "text": ""})
        elif event.kind == "partial":
            mouth.emit({"type": "hearing", "text": event.text})
        elif event.kind == "final":
            text = event.text.strip()
            self._heard_end = (self._t0 or time.monotonic()) + event.end_s
            mouth.emit({"type": "heard", "text": text, "mode": self.mode})
            if not text:
                return
            self.heard += 1
            self.last_heard = text
            await self.respond(text)

    async def respond(self, text: str) -> None:
        """Answer ``text`` the way the session's mode says (echo repeats, chat asks the model)."""
        self._cancel_reply()
        if self.mode == "echo":
            self._reply = asyncio.get_running_loop().create_task(self._speak(_single(text), text))
        elif self.mode == "chat" and self.chat is not None:
            self._reply = asyncio.get_running_loop().create_task(self._answer(text))

    async def chat_text(self, text: str) -> None:
        """Typed chat: ``text`` goes to the language model as if heard."""
        self._heard_end = None
        self._cancel_reply()
        self._reply = asyncio.get_running_loop().create_task(self._answer(text))

    async def _speak(self, sentences: AsyncIterator[str], source: str) -> None:
        try:
            self._answer_uid = await self.mouth.say_stream(sentences, source)
        finally:
            if self._reply is asyncio.current_task():
                self._reply = None

    async def _answer(self, text: str) -> None:
        from avatarlab.serve.llm import LLMError, spoken_sentences

        assert self.chat is not None and self.conversation is not None
        said: list[str] = []
        messages = self.conversation.messages(text)

        async def sentences() -> AsyncIterator[str]:
            try:
                assert self.chat is not None
                async for sentence in spoken_sentences(self.chat, messages):
                    said.append(sentence)
                    self.mouth.emit({"type": "reply", "text": sentence})
                    yield sentence
            except LLMError as exc:
                self.mouth.emit({"type": "error", "message": f"the language model failed: {exc}"})
                if not said:
                    yield APOLOGY

        try:
            await self._speak(sentences(), "chat")
        finally:
            self.conversation.add_turn(text, " ".join(said))

    def first_audio(self, utterance: int, play_time: float) -> None:
        """The reply ``utterance`` starts playing at ``play_time``: note the reply latency."""
        if utterance == self._answer_uid and self._heard_end is not None:
            self.last_latency_s = play_time - self._heard_end
            self.mouth.emit({"type": "reply_latency", "seconds": round(self.last_latency_s, 3)})
            self._heard_end = None

    def _cancel_reply(self) -> None:
        task, self._reply = self._reply, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        self._cancel_reply()
        task, self._reader = self._reader, None
        self.track = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _single(text: str) -> AsyncIterator[str]:
    yield text
