"""Talking with the avatar: microphone over WebRTC, listening modes, barge-in by voice,
chat through an OpenAI-compatible endpoint (a fake one on 127.0.0.1), voices, previews."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from avatarlab.serve import ServeOptions, create_app
from avatarlab.serve.client import AvatarClient, SpeechTrack
from avatarlab.serve.converse import APOLOGY, Ears
from avatarlab.speech.listen import ListenEvent
from tests.serve._fake_llm import running_fake_llm
from tests.serve._serve_fakes import FakeBackend, png_bytes
from tests.serve.conftest import live_server

BASE = "http://127.0.0.1"
RATE = 48_000


def _options(tmp_path: Path, **kw: Any) -> ServeOptions:
    avatar = tmp_path / "face.png"
    avatar.write_bytes(png_bytes())
    return ServeOptions(avatars=(avatar,), camera=False, **kw)


# -- Ears, with a scripted session ---------------------------------------------------


class _Mouth:
    """The session as Ears sees it, recording what it was asked to do."""

    def __init__(self) -> None:
        self.closed = False
        self.events: list[dict[str, Any]] = []
        self.said: list[list[str]] = []
        self.stops = 0
        self.talking = False

    @property
    def speaking(self) -> bool:
        return self.talking

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def stop(self) -> None:
        self.stops += 1
        self.talking = False

    def touch(self) -> None:
        pass

    async def say_stream(self, sentences: AsyncIterator[str], source: str) -> int | None:
        said: list[str] = []
        self.said.append(said)
        async for sentence in sentences:
            said.append(sentence)
        return len(self.said)

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]


def _event(kind: str, text: str = "", end: float = 1.0) -> ListenEvent:
    return ListenEvent(kind=kind, text=text, start_s=0.0, end_s=end)  # type: ignore[arg-type]


async def _settle(ears: Ears) -> None:
    for _ in range(200):  # the reply task runs to its end (bounded)
        if ears._reply is None:
            return
        await asyncio.sleep(0.01)


def test_echo_repeats_and_voice_barges_in() -> None:
    async def scenario() -> _Mouth:
        mouth = _Mouth()
        ears = Ears(mouth, None, mode="echo")  # type: ignore[arg-type]
        mouth.talking = True  # the avatar talks when the viewer starts speaking
        await ears.on_event(_event("speech_start"))
        await ears.on_event(_event("partial", "hello"))
        await ears.on_event(_event("final", "hello there"))
        await _settle(ears)
        await ears.on_event(_event("final", ""))  # nothing recognised: nothing said
        return mouth

    mouth = asyncio.run(scenario())
    assert mouth.stops == 1 and "barge_in" in mouth.kinds()
    assert mouth.said == [["hello there"]]
    heard = [e for e in mouth.events if e["type"] == "heard"]
    assert [e["text"] for e in heard] == ["hello there", ""]
    assert {"type": "hearing", "text": "hello"} in mouth.events


def test_off_ignores_and_chat_answers_with_history() -> None:
    from avatarlab.serve.llm import ChatClient, Conversation, LLMOptions

    async def scenario(url: str) -> tuple[_Mouth, Ears]:
        mouth = _Mouth()
        chat = ChatClient(LLMOptions(url=url, timeout_s=5.0, first_token_timeout_s=2.0))
        ears = Ears(mouth, None, "off", chat, Conversation("Be brief.", 8))  # type: ignore[arg-type]
        await ears.on_event(_event("final", "ignored words"))
        ears.set_mode("chat")
        await ears.on_event(_event("final", "what is your name"))
        await _settle(ears)
        await ears.on_event(_event("final", "and how old are you"))
        await _settle(ears)
        await chat.aclose()
        return mouth, ears

    reply = "I am the avatar. Nice to meet you!"
    with running_fake_llm(reply=reply) as llm:
        mouth, ears = asyncio.run(scenario(llm.base()))
        requests = llm.requests
    assert mouth.said[0] == ["I am the avatar.", "Nice to meet you!"]
    assert len(mouth.said) == 2 and ears.heard == 2
    last = requests[-1].messages
    assert last[0]["role"] == "system"
    assert [m["content"] for m in last[1:]] == [
        "what is your name",
        reply,
        "and how old are you",
    ]


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_failing_model_gets_an_apology(mode: str) -> None:
    from avatarlab.serve.llm import ChatClient, Conversation, LLMOptions

    async def scenario(url: str) -> _Mouth:
        mouth = _Mouth()
        options = LLMOptions(url=url, timeout_s=1.5, first_token_timeout_s=0.5)
        chat = ChatClient(options)
        ears = Ears(mouth, None, "chat", chat, Conversation("Be brief.", 8))  # type: ignore[arg-type]
        await ears.on_event(_event("final", "are you there"))
        await _settle(ears)
        await chat.aclose()
        return mouth

    with running_fake_llm(mode=mode) as llm:
        started = time.monotonic()
        mouth = asyncio.run(scenario(llm.base()))
        took = time.monotonic() - started
    assert mouth.said == [[APOLOGY]]
    assert any(e["type"] == "error" for e in mouth.events)
    assert took < 3.0


# -- the server's API ----------------------------------------------------------------


def test_listen_chat_voice_and_preview_routes(tmp_path: Path) -> None:
    with TestClient(create_app(_options(tmp_path), backend=FakeBackend()), base_url=BASE) as c:
        health = c.get("/health").json()
        assert health["llm"] is False and health["listen"] == "off"
        sid = c.post("/sessions", json={}).json()["id"]
        info = c.get(f"/sessions/{sid}").json()
        assert info["listen"]["mode"] == "off" and info["voice"]["voice"] == "en-us"
        assert (
            c.post(f"/sessions/{sid}/listen", json={"mode": "echo"}).json()["listen"]["mode"]
            == "echo"
        )
        r = c.post(f"/sessions/{sid}/listen", json={"mode": "chat"})
        assert r.status_code == 409 and "--llm" in r.json()["detail"]
        assert c.post(f"/sessions/{sid}/chat", json={"text": "hi"}).status_code == 409
        assert c.post("/sessions", json={"listen": "chat"}).status_code == 409
        assert c.post(f"/sessions/{sid}/listen", json={"mode": "loud"}).status_code == 422

        voices = c.get("/voices").json()
        ids = {v["id"] for v in voices}
        assert "en-us" in ids and len({v["language"] for v in voices}) > 10
        r = c.post(f"/sessions/{sid}/voice", json={"voice": "fr-fr", "rate_wpm": 200, "pitch": 70})
        assert r.status_code == 200 and r.json()["voice"] == {
            "voice": "fr-fr",
            "rate_wpm": 200,
            "pitch": 70,
        }
        assert c.post(f"/sessions/{sid}/voice", json={"voice": "xx-nope"}).status_code == 422
        assert (
            c.post(f"/sessions/{sid}/voice", json={"voice": "en-us", "pitch": 500}).status_code
            == 422
        )

        avatar = c.get("/avatars").json()[0]["id"]
        r = c.get(f"/avatars/{avatar}/preview")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content[:2] == b"\xff\xd8"
        assert c.get("/avatars/nope/preview").status_code == 404


def test_typed_chat_is_spoken(tmp_path: Path) -> None:
    with running_fake_llm(reply="Hello from the model. How can I help?") as llm:
        app = create_app(_options(tmp_path, llm=llm.base()), backend=FakeBackend())
        with TestClient(app, base_url=BASE) as c:
            assert c.get("/health").json()["llm"] is True
            sid = c.post("/sessions", json={"listen": "chat"}).json()["id"]
            assert c.post(f"/sessions/{sid}/chat", json={"text": "hello"}).status_code == 202
            deadline = time.monotonic() + 10
            while c.get(f"/sessions/{sid}").json()["utterances"] < 1:
                assert time.monotonic() < deadline, "the reply was never spoken"
                time.sleep(0.05)
        assert llm.requests[-1].messages[-1] == {"role": "user", "content": "hello"}


# -- the microphone over WebRTC, real listening ---------------------------------------


def _speech_48k(data_dir: Path, start: float, end: float) -> np.ndarray:
    from avatarlab.media import read_audio

    audio = read_audio(data_dir / "audio" / "english_radio_8s.wav", sample_rate=RATE)
    return audio[int(start * RATE) : int(end * RATE)]


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


@pytest.mark.slow
def test_microphone_echo_and_chat_over_webrtc(tmp_path: Path, data_dir: Path) -> None:
    """A client sends real English speech as its microphone: in echo mode the avatar says
    what was heard; in chat mode the fake model's reply plays within 1 s of the end of the
    speech (the server's clock and the client's)."""
    speech = _speech_48k(data_dir, 0.0, 3.0)
    reply = "Thank you, that is interesting."

    async def scenario(url: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mic = SpeechTrack()
        async with AvatarClient(url) as client:
            await client.start(mic=mic, listen="echo")
            await client.wait_frames(10)
            mic.play(np.zeros(RATE // 2, np.float32))
            mic.play(speech)

            async def heard() -> bool:
                return (await client.status())["listen"]["heard"] >= 1

            await _wait(heard, 20, "echo mode heard nothing")
            status = await client.status()
            out["echo_text"] = status["listen"]["last_heard"]

            async def spoke() -> bool:
                return (await client.status())["utterances"] >= 1

            await _wait(spoke, 10, "the avatar did not repeat what it heard")
            assert (await client.listen("chat")).status_code == 200
            client.received.audio.clear()
            client.received.audio_times.clear()
            mic.play(speech)

            async def answered() -> bool:
                return (await client.status())["listen"]["reply_latency_s"] is not None

            await _wait(answered, 20, "chat mode did not answer")
            await asyncio.sleep(1.0)
            out["status"] = await client.status()
            out["speech_end"] = mic.played[-1][1]
            loud = [
                t
                for t, a in zip(client.received.audio_times, client.received.audio, strict=True)
                if t > out["speech_end"] and float(np.abs(a).max()) > 0.02
            ]
            out["first_reply_audio"] = loud[0] if loud else None
        return out

    with running_fake_llm(reply=reply) as llm:
        options = _options(tmp_path, llm=llm.base())
        with live_server(options, FakeBackend()) as url:
            out = asyncio.run(scenario(url))
    words = set(out["echo_text"].lower().split())
    assert len(words) >= 3, out["echo_text"]
    latency = out["status"]["listen"]["reply_latency_s"]
    assert 0.0 < latency <= 1.0, latency
    assert out["first_reply_audio"] is not None
    # The speech clip ends with a little trailing silence in the file; measured from the
    # clip's last sample the client-side figure is an upper bound.
    assert out["first_reply_audio"] - out["speech_end"] <= 1.2
