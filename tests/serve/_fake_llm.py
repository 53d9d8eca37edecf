"""A fake OpenAI-compatible chat endpoint on loopback, for the language model client tests.

``POST /v1/chat/completions`` behaves as :attr:`FakeLLM.mode` says;
``POST /{mode}/v1/chat/completions`` picks the mode per request (so a test points a
client at ``fake.base("hang")``). Modes:

- ``stream``: the reply as server-sent events, one chunk per token every ``token_delay`` s,
  then a finish chunk and ``data: [DONE]``;
- ``slow``: the same at ``slow_delay`` s per token;
- ``stall``: the first token, then nothing (until ``hang_s`` or the server stops);
- ``truncated``: half the tokens, then the stream ends without finishing;
- ``nostream``: one JSON completion (a server that ignores ``stream``);
- ``error``: HTTP 500 with an OpenAI error body; ``unauthorized``: HTTP 401 whose
  message echoes the key it got, as some APIs do;
- ``hang``: reads the request and sends nothing (until ``hang_s`` or the server stops);
- ``garbage``: an event stream whose data is not JSON.

Every request is recorded (:attr:`FakeLLM.requests`). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODES = (
    "stream",
    "slow",
    "stall",
    "truncated",
    "nostream",
    "error",
    "unauthorized",
    "hang",
    "garbage",
)
DEFAULT_REPLY = "Hello there. This is the fake model speaking! Is that clear?"


@dataclass
class Received:
    """One request as the fake server saw it."""

    mode: str
    model: str | None
    messages: list[dict[str, str]]
    stream: bool
    authorization: str | None
    body: dict[str, Any]
    at: float  # time.monotonic() when it arrived


@dataclass
class FakeLLM:
    """Settings and records of the fake endpoint (change them between requests).

    Attributes:
        reply: the text every reply carries.
        mode: the mode of ``/v1/chat/completions``.
        token_delay: seconds before each streamed token (``stream``).
        slow_delay: seconds before each token in ``slow`` mode.
        chunk_chars: tokens of this many characters; ``None``: words with their spaces.
        hang_s: longest a ``hang``/``stall`` request waits.
        requests: what was received, oldest first.
        finished_at: ``time.monotonic()`` when the last stream sent its final token.
        cut_short: streams that ended before their last token (the client went away).
    """

    reply: str = DEFAULT_REPLY
    mode: str = "stream"
    token_delay: float = 0.005
    slow_delay: float = 0.08
    chunk_chars: int | None = None
    hang_s: float = 10.0
    requests: list[Received] = field(default_factory=list)
    finished_at: float | None = None
    cut_short: int = 0
    port: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)

    def base(self, mode: str | None = None) -> str:
        """Base URL (ending in ``/v1``) of this server, for ``mode`` (None: :attr:`mode`)."""
        prefix = f"/{mode}" if mode else ""
        return f"http://127.0.0.1:{self.port}{prefix}/v1"

    def tokens(self) -> list[str]:
        if self.chunk_chars:
            n = self.chunk_chars
            return [self.reply[i : i + n] for i in range(0, len(self.reply), n)]
        return re.findall(r"\s*\S+|\s+$", self.reply) or [self.reply]  # " word", as models do

    def reset(self) -> None:
        """Back to the default settings, nothing recorded."""
        fresh = FakeLLM()
        self.reply, self.mode = fresh.reply, fresh.mode
        self.token_delay, self.slow_delay = fresh.token_delay, fresh.slow_delay
        self.chunk_chars, self.hang_s = fresh.chunk_chars, fresh.hang_s
        self.requests.clear()
        self.finished_at = None
        self.cut_short = 0

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the server stops."""
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.05, max(end - time.monotonic(), 0)))

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        mode = request.path_params.get("mode", self.mode)
        self.requests.append(
            Received(
                mode=mode,
                model=body.get("model"),
                messages=body.get("messages", []),
                stream=bool(body.get("stream")),
                authorization=request.headers.get("authorization"),
                body=body,
                at=time.monotonic(),
            )
        )
        if mode == "error":
            error = {"message": "the model crashed (fake)", "type": "server_error", "code": None}
            return JSONResponse({"error": error}, status_code=500)
        if mode == "unauthorized":
            got = (request.headers.get("authorization") or "").removeprefix("Bearer ")
            error = {
                "message": f"Incorrect API key provided: {got}.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return JSONResponse({"error": error}, status_code=401)
        if mode == "hang":
            await self._pause(self.hang_s)
            return Response(status_code=204)
        if mode == "nostream":
            message = {"role": "assistant", "content": self.reply}
            completion = {
                "id": "fake",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
            return JSONResponse(completion)
        if mode == "garbage":
            return StreamingResponse(
                iter([b'data: {"choices": [{"delta": {"content": "Hi\n\n', b"data: {oops\n\n"]),
                media_type="text/event-stream",
            )
        if mode not in MODES:
            return JSONResponse({"error": {"message": f"unknown fake mode {mode}"}}, 404)
        return StreamingResponse(self._events(mode), media_type="text/event-stream")

    async def _events(self, mode: str) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            payload = {"id": "fake", "object": "chat.completion.chunk", "choices": [choice]}
            return f"data: {json.dumps(payload)}\n\n".encode()

        yield chunk({"role": "assistant"})
        tokens = self.tokens()
        if mode == "truncated":
            tokens = tokens[: max(len(tokens) // 2, 1)]
        delay = self.slow_delay if mode == "slow" else self.token_delay
        sent = 0
        try:
            for token in tokens:
                await self._pause(delay)
                yield chunk({"content": token})
                sent += 1
                if mode == "stall":
                    await self._pause(self.hang_s)
                    return
        finally:
            if sent < len(tokens):
                self.cut_short += 1
        self.finished_at = time.monotonic()
        if mode == "truncated":
            return
        yield chunk({}, finish="stop")
        yield b"data: [DONE]\n\n"

    def app(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/{mode}/v1/chat/completions", self.chat, methods=["POST"]),
        ]
        return Starlette(routes=routes)


@contextlib.contextmanager
def running_fake_llm(ready_timeout: float = 20.0, **settings: Any) -> Iterator[FakeLLM]:
    """A :class:`FakeLLM` served by uvicorn on 127.0.0.1 (a free port) in a thread."""
    import uvicorn

    fake = FakeLLM(**settings)
    config = uvicorn.Config(
        fake.app(), host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-llm", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the fake language model server did not start")
            time.sleep(0.02)
        fake.port = server.servers[0].sockets[0].getsockname()[1]
        yield fake
    finally:
        fake._stopping.set()
        server.should_exit = True
        thread.join(10)
