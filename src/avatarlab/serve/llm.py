"""Answering: a streamed reply from any OpenAI-compatible chat endpoint, cut into spoken sentences.

The server talks to an endpoint the user runs or names (llama.cpp ``llama-server``,
vLLM, Ollama, a cloud API); nothing goes over the network unless one is configured.

    client = ChatClient(LLMOptions(url="http://127.0.0.1:8080/v1"))
    conversation = Conversation(client.options.system_prompt, client.options.max_history)
    said = []
    async for sentence in spoken_sentences(client, conversation.messages("Hi!")):
        said.append(sentence)            # speak it now; the model is still writing
    conversation.add_turn("Hi!", " ".join(said))

The reply comes as server-sent events (``stream: true``) and is cut into sentences as
it arrives (:class:`SentenceCutter`), so the first sentence can be spoken while the
model writes the rest. Markdown is removed, since it would be read out. Failures
(unreachable, HTTP errors, timeouts, malformed streams) raise :class:`LLMError` with
one line saying what to check; the API key is read from a named environment variable
and never appears in options, logs or errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.serve.sentences import MAX_SENTENCE_CHARS, SentenceCutter

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("avatarlab.serve")

T = TypeVar("T")

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly assistant in a live video call. Answer briefly, in one to three "
    "short spoken sentences, without lists or markdown."
)
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
"""Most bytes read from one reply (stream or JSON), whatever the server sends."""
MAX_ERROR_CHARS = 300
"""Longest server error message quoted in an :class:`LLMError`."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSION_SEGMENT = re.compile(r"v\d+\w*")


class LLMError(AvatarLabError):
    """The language model endpoint failed: unreachable, an HTTP error, too slow, or a
    reply that is not an OpenAI chat completion. ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def chat_endpoint(url: str) -> str:
    """The ``.../chat/completions`` URL of an OpenAI-compatible base URL.

    ``http://h:8080`` and ``http://h:8080/`` get ``/v1/chat/completions``; a path that
    holds a version segment (``/v1``, ``/openai/v1``, ``/v1beta/openai``) gets
    ``/chat/completions``; a full ``.../chat/completions`` URL is kept. The query is kept.
    """
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        if any(_VERSION_SEGMENT.fullmatch(seg) for seg in path.split("/")):
            path += "/chat/completions"
        else:
            path += "/v1/chat/completions"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _shown(url: str) -> str:
    """A URL for messages: scheme, host and path only (a query may carry secrets)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass(frozen=True)
class LLMOptions:
    """Which chat endpoint answers and how long it may take.

    Attributes:
        url: base URL of the endpoint, e.g. ``http://127.0.0.1:8080/v1``; with or without
            ``/v1``, or the full ``.../chat/completions`` URL (see :func:`chat_endpoint`).
        model: model name sent with each request (llama.cpp ignores it; vLLM, Ollama and
            cloud APIs need the name they serve).
        key_env: name of the environment variable holding the API key (sent as
            ``Authorization: Bearer``); the key itself is never an option.
        system_prompt: the model's instructions, sent first with every request ("": none).
        timeout_s: longest time spent waiting on the server for one whole reply (s).
        first_token_timeout_s: longest wait until the server starts answering (s);
            ``timeout_s`` still bounds it.
        max_history: messages (user and assistant) remembered per conversation; the
            oldest turns are dropped; 0 remembers nothing.
        max_reply_chars: characters spoken from one reply; the reply stops at the last
            whole sentence within it.
        temperature: sampling temperature sent to the model (``None``: the server's).
    """

    url: str
    model: str = "default"
    key_env: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    timeout_s: float = 20.0
    first_token_timeout_s: float = 8.0
    max_history: int = 12
    max_reply_chars: int = 1200
    temperature: float | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionError(
                f"the language model URL must be http(s)://host[:port][/v1], got {self.url!r}"
            )
        if parts.username or parts.password:
            raise OptionError(
                "the language model URL must not hold credentials: put the key in an "
                "environment variable and name it with key_env"
            )
        if not self.model.strip():
            raise OptionError("the language model name must not be empty")
        for name in ("timeout_s", "first_token_timeout_s", "max_reply_chars"):
            if not getattr(self, name) > 0:
                raise OptionError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_history < 0:
            raise OptionError(f"max_history must be 0 or more, got {self.max_history}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise OptionError(f"temperature must be in 0..2, got {self.temperature}")
        if self.key_env is not None:
            if not _ENV_NAME.fullmatch(self.key_env):
                raise OptionError(
                    f"key_env must be the name of an environment variable (like OPENAI_API_KEY), "
                    f"not the key itself; got a value of {len(self.key_env)} characters"
                )
            if not os.environ.get(self.key_env):
                raise OptionError(
                    f"the environment variable {self.key_env} (key_env) is not set: export it "
                    "with the endpoint's API key, or drop key_env"
                )

    @property
    def endpoint(self) -> str:
        """The full chat completions URL requests go to."""
        return chat_endpoint(self.url)

    def api_key(self) -> str | None:
        """The API key from ``key_env`` (read now; ``None`` without ``key_env``)."""
        if self.key_env is None:
            return None
        return os.environ.get(self.key_env) or None


class Conversation:
    """Bounded chat history for one session: the system prompt, then the latest turns.

    A turn is a user message and the reply that was actually spoken (possibly cut short
    by an interruption); a turn with nothing spoken is not kept, so user and assistant
    messages alternate. Beyond ``max_history`` messages the oldest turns are dropped whole.
    """

    def __init__(self, system_prompt: str, max_history: int) -> None:
        if max_history < 0:
            raise OptionError(f"max_history must be 0 or more, got {max_history}")
        self.system_prompt = system_prompt
        self.max_history = max_history
        self._turns: deque[tuple[str, str]] = deque()

    def messages(self, user_text: str) -> list[dict[str, str]]:
        """The request's messages: system prompt, history, then ``user_text``."""
        out = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for user, reply in self._turns:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        out.append({"role": "user", "content": user_text})
        return out

    def add_turn(self, user_text: str, reply: str) -> None:
        """Remember ``user_text`` and the ``reply`` spoken to it (skipped when empty)."""
        if not reply.strip():
            return
        self._turns.append((user_text, reply.strip()))
        while 2 * len(self._turns) > self.max_history:
            self._turns.popleft()

    def clear(self) -> None:
        """Forget every turn (the system prompt stays)."""
        self._turns.clear()

    def __len__(self) -> int:
        """Messages remembered (user and assistant, without the system prompt)."""
        return 2 * len(self._turns)


class _Budget:
    """Time spent waiting on the server for one reply, against both timeouts.

    Only waits count: time the consumer takes between deltas does not.
    """

    def __init__(self, options: LLMOptions, where: str) -> None:
        self.options = options
        self.where = where
        self.waited = 0.0
        self.answering = False  # the server has started its reply

    def _limit(self) -> float:
        limit = self.options.timeout_s - self.waited
        if not self.answering:
            limit = min(limit, self.options.first_token_timeout_s - self.waited)
        return max(limit, 0.0)

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable`` within what is left of the budget (LLMError past it)."""
        start = time.monotonic()
        try:
            async with asyncio.timeout(self._limit()):
                return await awaitable
        except TimeoutError:
            raise LLMError(self._timeout_message()) from None
        finally:
            self.waited += time.monotonic() - start

    def _timeout_message(self) -> str:
        if not self.answering and self.waited < self.options.timeout_s:
            return (
                f"the language model at {self.where} did not start answering within "
                f"{self.options.first_token_timeout_s:g} s (first_token_timeout_s): check that "
                "the model is loaded and the server is not busy"
            )
        return (
            f"the language model at {self.where} did not finish its reply within "
            f"{self.options.timeout_s:g} s (timeout_s): use a faster model or a longer timeout"
        )


class ChatClient:
    """Streams chat completions from one OpenAI-compatible endpoint.

    Share one client between sessions (it keeps a connection pool); a client passed in
    is used as is and not closed by :meth:`aclose`.
    """

    def __init__(self, options: LLMOptions, client: httpx.AsyncClient | None = None) -> None:
        self.options = options
        self.endpoint = options.endpoint
        self._where = _shown(self.endpoint)
        self._key = options.api_key()
        self._own = client is None
        connect = min(options.first_token_timeout_s, options.timeout_s)
        import httpx  # here: reading the options needs no HTTP stack

        self._http = client or httpx.AsyncClient(timeout=httpx.Timeout(None, connect=connect))

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (when this client made it)."""
        if self._own:
            await self._http.aclose()

    def _body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.options.model, "messages": messages, "stream": True}
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _clean(self, text: str) -> str:
        """Server text fit for one error line: the key masked, whitespace collapsed, cut."""
        if self._key:
            text = text.replace(self._key, "***")
        text = " ".join(text.split())
        return text[:MAX_ERROR_CHARS] + ("..." if len(text) > MAX_ERROR_CHARS else "")

    async def stream(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        """The reply's text deltas as they arrive.

        Asks for server-sent events; a server that ignores ``stream`` and answers with
        one JSON completion yields its whole text once. Raises :class:`LLMError`. Close
        the iterator (``contextlib.aclosing``) to drop the request early.
        """
        import httpx

        budget = _Budget(self.options, self._where)
        request = self._http.build_request(
            "POST", self.endpoint, json=self._body(messages), headers=self._headers()
        )
        log.debug(
            "chat request to %s: model %s, %d messages",
            self._where,
            self.options.model,
            len(messages),
        )
        try:
            response = await budget.wait(self._http.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        try:
            if response.status_code >= 400:
                raise await self._status_error(response, budget)
            if "json" in response.headers.get("content-type", ""):
                budget.answering = True
                text = await self._json_reply(response, budget)
                if text:
                    yield text
                return
            async with contextlib.aclosing(self._events(response, budget)) as deltas:
                async for delta in deltas:
                    yield delta
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            await response.aclose()

    async def _events(self, response: httpx.Response, budget: _Budget) -> AsyncGenerator[str, None]:
        """Content deltas of an SSE chat completion stream, up to ``[DONE]``."""
        lines = response.aiter_lines()
        finished = False
        read = 0
        while True:
            try:
                line = await budget.wait(anext(lines))
            except StopAsyncIteration:
                break
            read += len(line) + 1
            if read > MAX_RESPONSE_BYTES:
                raise LLMError(f"the reply from {self._where} is over {MAX_RESPONSE_BYTES} bytes")
            if not line or line.startswith(":"):
                continue  # event separator, keep-alive comment
            field, _, value = line.partition(":")
            if field in ("event", "id", "retry"):
                continue
            if field != "data":
                raise self._malformed(f"a line that is not server-sent events: {line[:80]!r}")
            data = value.removeprefix(" ")
            if data.strip() == "[DONE]":
                return
            budget.answering = True
            chunk = self._parse(data)
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                raise self._malformed("a chunk without choices")
            if not choices:
                continue  # usage statistics
            choice = choices[0] if isinstance(choices[0], dict) else {}
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(content, str) and content:
                yield content
            finished = finished or choice.get("finish_reason") is not None
        if not finished:
            raise LLMError(
                f"the reply from {self._where} ended before it was complete (no [DONE]): "
                "the server may have crashed or cut the connection"
            )

    def _parse(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise self._malformed(f"a chunk that is not JSON: {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise self._malformed("a chunk that is not a JSON object")
        if "error" in chunk:
            raise LLMError(
                f"the language model at {self._where} failed while answering: "
                f"{self._clean(_error_text(chunk))}"
            )
        return chunk

    async def _read(self, response: httpx.Response, budget: _Budget, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body, within the budget."""
        body = bytearray()
        chunks = response.aiter_bytes()
        while len(body) < limit:
            try:
                body += await budget.wait(anext(chunks))
            except StopAsyncIteration:
                break
        return bytes(body[:limit])

    async def _json_reply(self, response: httpx.Response, budget: _Budget) -> str:
        body = await self._read(response, budget, MAX_RESPONSE_BYTES)
        try:
            completion = json.loads(body)
            if isinstance(completion, dict) and "error" in completion:
                raise LLMError(
                    f"the language model at {self._where} failed: "
                    f"{self._clean(_error_text(completion))}"
                )
            content = completion["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._malformed("JSON that is not a chat completion") from None
        if content is not None and not isinstance(content, str):
            raise self._malformed("a message whose content is not text")
        return content or ""

    async def _status_error(self, response: httpx.Response, budget: _Budget) -> LLMError:
        status = response.status_code
        try:
            body = await self._read(response, budget, 64 * 1024)
        except LLMError:
            body = b""
        try:
            message = _error_text(json.loads(body))
        except ValueError:
            message = body.decode("utf-8", "replace")
        message = self._clean(message) or response.reason_phrase
        key_hint = (
            "check the API key in the environment variable named by key_env"
            if self._key
            else "the endpoint wants an API key: name its environment variable with key_env"
        )
        hint = {
            401: key_hint,
            403: key_hint,
            404: "check the URL and the model name",
            429: "the endpoint is rate limiting: wait, or use another endpoint",
        }.get(status, "check the language model server's log")
        return LLMError(
            f"the language model at {self._where} answered HTTP {status}: {message} ({hint})",
            status=status,
        )

    def _transport_error(self, exc: httpx.HTTPError) -> LLMError:
        import httpx

        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return LLMError(
                f"cannot reach the language model at {self._where} ({self._clean(str(exc))}): "
                "start the server or fix the URL"
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(f"the language model at {self._where} timed out: {type(exc).__name__}")
        return LLMError(
            f"the connection to the language model at {self._where} failed: "
            f"{self._clean(str(exc)) or type(exc).__name__}"
        )

    def _malformed(self, what: str) -> LLMError:
        return LLMError(
            f"the language model at {self._where} sent {what}; is it an OpenAI-compatible "
            "chat completions endpoint?"
        )


def _error_text(payload: Any) -> str:
    """The message of an error body: OpenAI's ``{"error": {"message"}}``, or the
    ``error``/``detail``/``message`` string other servers use."""
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            value = payload.get(key)
            if isinstance(value, dict):
                return _error_text(value)
            if isinstance(value, str):
                return value
    return json.dumps(payload)[:MAX_ERROR_CHARS]


_MD_LINE_START = re.compile(r"^(?:\s*(?:#{1,6}\s+|>\s*|[-*+\u2022]\s+|\d{1,3}[.)]\s+))+")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_FENCE = re.compile(r"```[\w+-]*")
_MD_UNDERSCORES = re.compile(r"(?<!\w)_+|_+(?!\w)")
_MD_TABLE_RULE = re.compile(r"[\s|:\-]*")


def strip_markdown(sentence: str) -> str:
    """``sentence`` without the markdown that would be read out: headings, bullets,
    list numbers and quote marks at its start, emphasis (``*``, ``_``, ``~~``), code
    backticks and fences, links (their text stays), table bars; whitespace collapsed."""
    if _MD_TABLE_RULE.fullmatch(sentence):
        return ""
    text = _MD_LINE_START.sub("", sentence)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_FENCE.sub("", text)
    text = text.replace("`", "").replace("*", "").replace("~~", "")
    text = _MD_UNDERSCORES.sub("", text)
    if "|" in text:
        text = ", ".join(cell.strip() for cell in text.split("|") if cell.strip())
    return " ".join(text.split())


class _HiddenThoughts:
    """Drops ``<think>...</think>`` spans (reasoning some models write into the reply)
    from text arriving in pieces."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._buf = ""
        self._inside = False

    def feed(self, delta: str) -> str:
        self._buf += delta
        out: list[str] = []
        while True:
            tag = self.CLOSE if self._inside else self.OPEN
            i = self._buf.find(tag)
            if i < 0:
                break
            if not self._inside:
                out.append(self._buf[:i])
            self._buf = self._buf[i + len(tag) :]
            self._inside = not self._inside
        keep = next(
            (
                k
                for k in range(min(len(tag) - 1, len(self._buf)), 0, -1)
                if tag.startswith(self._buf[-k:])
            ),
            0,
        )
        if not self._inside:
            out.append(self._buf[: len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep :]
        return "".join(out)

    def flush(self) -> str:
        rest = "" if self._inside else self._buf
        self._buf, self._inside = "", False
        return rest


async def spoken_sentences(
    client: ChatClient,
    messages: list[dict[str, str]],
    max_reply_chars: int | None = None,
    max_sentence_chars: int = MAX_SENTENCE_CHARS,
) -> AsyncIterator[str]:
    """The reply to ``messages`` as plain sentences to speak, each as soon as it is written.

    Markdown and ``<think>`` spans are removed; the reply stops (and its request is
    dropped) before the sentence that would pass ``max_reply_chars`` (default: the
    client's option), though the first sentence is always given. The client's
    timeouts apply; failures raise :class:`LLMError`, possibly after some sentences.
    """
    limit = client.options.max_reply_chars if max_reply_chars is None else max_reply_chars
    cutter = SentenceCutter(max_sentence_chars)
    thoughts = _HiddenThoughts()
    spoken = 0
    async with contextlib.aclosing(client.stream(messages)) as deltas:
        done = False
        while not done:
            delta = await anext(deltas, None)
            if delta is None:
                done = True
                pieces = cutter.feed(thoughts.flush()) + cutter.flush()
            else:
                pieces = cutter.feed(thoughts.feed(delta))
            for piece in pieces:
                sentence = strip_markdown(piece)
                if not any(ch.isalnum() for ch in sentence):
                    continue
                if spoken and spoken + 1 + len(sentence) > limit:
                    log.debug("reply cut at %d characters (max_reply_chars)", spoken)
                    return
                spoken += len(sentence) + (1 if spoken else 0)
                yield sentence
