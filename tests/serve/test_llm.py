"""The language model client (:mod:`avatarlab.serve.llm`) against a fake OpenAI-compatible
endpoint on loopback: streamed sentences, history, the API key, failures, and the
sentence cutter and markdown stripping on their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avatarlab.errors import OptionError
from avatarlab.serve.llm import (
    ChatClient,
    Conversation,
    LLMError,
    LLMOptions,
    chat_endpoint,
    spoken_sentences,
    strip_markdown,
)
from avatarlab.serve.sentences import SentenceCutter
from tests.serve._fake_llm import FakeLLM, running_fake_llm

KEY_ENV = "AVATARLAB_TEST_LLM_KEY"
SECRET = "sk-test-0123456789abcdef-secret"


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeLLM]:
    with running_fake_llm() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeLLM) -> FakeLLM:
    _server.reset()
    return _server


def _options(url: str, **kw: Any) -> LLMOptions:
    kw.setdefault("model", "test-model")
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("first_token_timeout_s", 3.0)
    return LLMOptions(url=url, **kw)


def _answer(options: LLMOptions, messages: list[dict[str, str]], **kw: Any) -> list[str]:
    async def scenario() -> list[str]:
        async with ChatClient(options) as client:
            return [s async for s in spoken_sentences(client, messages, **kw)]

    return asyncio.run(scenario())


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- options and URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/chat/completions"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/chat/completions"),
        ("http://localhost:11434/v1/", "http://localhost:11434/v1/chat/completions"),
        ("http://h:8000/v1/chat/completions", "http://h:8000/v1/chat/completions"),
        ("https://api.example.com/openai/v1", "https://api.example.com/openai/v1/chat/completions"),
        (
            "https://g.example.com/v1beta/openai/",
            "https://g.example.com/v1beta/openai/chat/completions",
        ),
        ("http://h/proxy", "http://h/proxy/v1/chat/completions"),
        ("https://h/v1?api-version=2", "https://h/v1/chat/completions?api-version=2"),
    ],
)
def test_chat_endpoint(url: str, endpoint: str) -> None:
    assert chat_endpoint(url) == endpoint
    assert LLMOptions(url=url).endpoint == endpoint


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"url": "ftp://h/v1"}, "http(s)://"),
        ({"url": "localhost:8080"}, "http(s)://"),
        ({"url": "http:///v1"}, "http(s)://"),
        ({"url": "http://user:pw@h/v1"}, "credentials"),
        ({"url": "http://h", "timeout_s": 0}, "timeout_s"),
        ({"url": "http://h", "first_token_timeout_s": -1}, "first_token_timeout_s"),
        ({"url": "http://h", "max_reply_chars": 0}, "max_reply_chars"),
        ({"url": "http://h", "max_history": -2}, "max_history"),
        ({"url": "http://h", "temperature": 3.0}, "temperature"),
        ({"url": "http://h", "model": " "}, "name"),
    ],
)
def test_options_refuse(kw: dict[str, Any], says: str) -> None:
    with pytest.raises(OptionError, match=re.escape(says)):
        LLMOptions(**kw)


def test_key_env_must_be_set_and_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(OptionError, match=KEY_ENV):
        LLMOptions(url="http://h", key_env=KEY_ENV)
    with pytest.raises(OptionError, match="not the key itself") as caught:
        LLMOptions(url="http://h", key_env=SECRET)
    assert SECRET not in str(caught.value)
    monkeypatch.setenv(KEY_ENV, SECRET)
    options = LLMOptions(url="http://h", key_env=KEY_ENV)
    assert options.api_key() == SECRET and SECRET not in repr(options)


# --- streamed replies -------------------------------------------------------------


def test_first_sentence_before_the_server_finishes(fake: FakeLLM) -> None:
    fake.reply = "Hello there. This second sentence takes the slow model a while to write, word by word. Bye."
    fake.slow_delay = 0.06
    options = _options(fake.base("slow"))

    async def scenario() -> tuple[list[tuple[float, str]], float]:
        async with ChatClient(options) as client:
            start = time.monotonic()
            out = [(time.monotonic(), s) async for s in spoken_sentences(client, _user("Hi"))]
            return out, start

    got, start = asyncio.run(scenario())
    assert [s for _, s in got] == [
        "Hello there.",
        "This second sentence takes the slow model a while to write, word by word.",
        "Bye.",
    ]
    assert fake.finished_at is not None
    first, last = got[0][0], got[-1][0]
    # The first sentence is complete after 3 of 18 tokens, so it comes well before the end.
    assert first < fake.finished_at - 0.3, (first - start, fake.finished_at - start)
    assert last >= fake.finished_at
    sent = fake.requests[-1]
    assert sent.stream and sent.model == "test-model" and sent.authorization is None
    assert sent.messages == _user("Hi")


def test_cancelled_reply_drops_its_request(fake: FakeLLM) -> None:
    """Barge-in: cancelling the task reading a reply ends the request at once (the model
    server sees the client go), and the client serves the next reply."""
    fake.reply = "Hello there. " + "This goes on and on. " * 20

    async def scenario() -> tuple[list[str], float, list[str]]:
        async with ChatClient(_options(fake.base())) as client:
            got: list[str] = []
            first = asyncio.Event()

            async def listen() -> None:
                async for sentence in spoken_sentences(client, _user("Hi")):
                    got.append(sentence)
                    first.set()

            fake.token_delay = 0.05
            task = asyncio.create_task(listen())
            await asyncio.wait_for(first.wait(), 5)
            start = time.monotonic()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            cancel_s = time.monotonic() - start
            fake.reply, fake.token_delay = "Again.", 0.005
            again = [s async for s in spoken_sentences(client, _user("Again"))]
            return got, cancel_s, again

    got, cancel_s, again = asyncio.run(scenario())
    assert got == ["Hello there."] and again == ["Again."]
    assert cancel_s < 0.5
    deadline = time.monotonic() + 3
    while fake.cut_short < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.cut_short == 1 and fake.finished_at is not None  # only "Again." finished


def test_history_is_bounded_and_sent(fake: FakeLLM) -> None:
    options = _options(fake.base(), max_history=4, system_prompt="Be brief.")
    conversation = Conversation(options.system_prompt, options.max_history)
    replies = ["First answer.", "Second answer.", "Third answer."]

    async def scenario() -> None:
        async with ChatClient(options) as client:
            for i, reply in enumerate(replies):
                fake.reply = reply
                text = f"question {i}"
                said = [s async for s in spoken_sentences(client, conversation.messages(text))]
                conversation.add_turn(text, " ".join(said))

    asyncio.run(scenario())
    assert len(fake.requests) == 3 and len(conversation) == 4
    assert fake.requests[1].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question 0"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "question 1"},
    ]
    # After three turns with room for four messages, the first turn is gone.
    assert conversation.messages("next") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question 1"},
        {"role": "assistant", "content": "Second answer."},
        {"role": "user", "content": "question 2"},
        {"role": "assistant", "content": "Third answer."},
        {"role": "user", "content": "next"},
    ]


def test_conversation_keeps_turns_whole() -> None:
    conversation = Conversation("", 3)  # odd: only one whole turn fits
    conversation.add_turn("a", "reply a")
    conversation.add_turn("b", "   ")  # nothing was spoken (interrupted at once)
    conversation.add_turn("c", "reply c, cut sh")
    assert conversation.messages("d") == [
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "reply c, cut sh"},
        {"role": "user", "content": "d"},
    ]
    assert Conversation("sys", 0).messages("x") == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "x"},
    ]


def test_key_is_sent_and_never_shown(
    fake: FakeLLM, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    assert _answer(_options(fake.base(), key_env=KEY_ENV), _user("Hi"))
    assert fake.requests[-1].authorization == f"Bearer {SECRET}"
    with pytest.raises(LLMError) as caught:
        _answer(_options(fake.base("unauthorized"), key_env=KEY_ENV), _user("Hi"))
    message = str(caught.value)
    assert caught.value.status == 401
    assert "HTTP 401" in message and "Incorrect API key provided: ***" in message
    assert "key_env" in message
    assert caplog.records and SECRET not in caplog.text
    assert SECRET not in message


def test_server_error_is_one_line_with_its_message(fake: FakeLLM) -> None:
    with pytest.raises(LLMError) as caught:
        _answer(_options(fake.base("error")), _user("Hi"))
    assert caught.value.status == 500
    message = str(caught.value)
    assert "HTTP 500" in message and "the model crashed (fake)" in message and "\n" not in message


def test_silent_server_times_out_at_the_first_token(fake: FakeLLM) -> None:
    options = _options(fake.base("hang"), first_token_timeout_s=0.4, timeout_s=5.0)
    start = time.monotonic()
    with pytest.raises(LLMError, match="first_token_timeout_s"):
        _answer(options, _user("Hi"))
    assert 0.35 < time.monotonic() - start < 3.0
    assert fake.requests[-1].mode == "hang"


def test_stalled_stream_times_out_on_the_whole_reply(fake: FakeLLM) -> None:
    options = _options(fake.base("stall"), first_token_timeout_s=0.3, timeout_s=0.6)
    start = time.monotonic()
    with pytest.raises(LLMError, match=r"timeout_s\)"):
        _answer(options, _user("Hi"))
    assert 0.55 < time.monotonic() - start < 3.0


@pytest.mark.parametrize(("mode", "says"), [("garbage", "not JSON"), ("truncated", "ended before")])
def test_malformed_streams(fake: FakeLLM, mode: str, says: str) -> None:
    with pytest.raises(LLMError, match=says):
        _answer(_options(fake.base(mode)), _user("Hi"))


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(LLMError, match="cannot reach"):
        _answer(_options(f"http://127.0.0.1:{port}"), _user("Hi"))


def test_server_that_ignores_stream(fake: FakeLLM) -> None:
    fake.reply = "One whole reply. Not streamed at all!"
    assert _answer(_options(fake.base("nostream")), _user("Hi")) == [
        "One whole reply.",
        "Not streamed at all!",
    ]
    assert fake.requests[-1].stream  # it was asked to stream


def test_markdown_and_thoughts_are_not_spoken(fake: FakeLLM) -> None:
    fake.reply = (
        "<think>The user greets me. I should answer.</think>## Answer\n"
        "- **First** point.\n- Second point, see [the docs](http://e.com/x).\n"
        "1. `code` here"
    )
    fake.chunk_chars = 3  # tags and markup split across deltas
    assert _answer(_options(fake.base()), _user("Hi")) == [
        "Answer",
        "First point.",
        "Second point, see the docs.",
        "code here",
    ]


def test_reply_cut_at_max_reply_chars(fake: FakeLLM) -> None:
    fake.reply = " ".join(f"Sentence number {i} is here." for i in range(20))
    fake.token_delay = 0.0
    full = _answer(_options(fake.base()), _user("Hi"))
    assert len(full) == 20
    cut = _answer(_options(fake.base(), max_reply_chars=80), _user("Hi"))
    assert cut == full[: len(cut)] and len(" ".join(cut)) <= 80
    assert len(" ".join(full[: len(cut) + 1])) > 80
    assert _answer(_options(fake.base(), max_reply_chars=5), _user("Hi")) == full[:1]


# --- sentence cutting and markdown --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Dr. Smith is here. He left.", ["Dr. Smith is here.", "He left."]),
        (
            "Use a fork, e.g. this one. Or i.e. that.",
            ["Use a fork, e.g. this one.", "Or i.e. that."],
        ),
        ("Pi is 3.14 or so. Yes.", ["Pi is 3.14 or so.", "Yes."]),
        ("The U.S. is big. Okay.", ["The U.S. is big.", "Okay."]),
        ("J. R. R. Tolkien wrote it. Yes!", ["J. R. R. Tolkien wrote it.", "Yes!"]),
        ("Wait... what? Fine… then.", ["Wait... what?", "Fine… then."]),
        ('He said "hi." Then he left.', ['He said "hi."', "Then he left."]),
        ("(This is an aside.) Next one!? Sure.", ["(This is an aside.)", "Next one!?", "Sure."]),
        ("Note: it works; mostly", ["Note:", "it works;", "mostly"]),
        ("Line one\nLine two\n\n", ["Line one", "Line two"]),
        ("1. First\n2. Second", ["1. First", "2. Second"]),
        ("你好。我很好！谢谢", ["你好。", "我很好！", "谢谢"]),
        ("Ok. ... ---", ["Ok."]),
    ],
)
def test_sentence_cutter(text: str, sentences: list[str]) -> None:
    cutter = SentenceCutter()
    assert cutter.feed(text) + cutter.flush() == sentences


def test_sentence_cutter_gives_each_sentence_when_it_ends() -> None:
    cutter = SentenceCutter()
    assert cutter.feed("Hello there.") == []  # could still be "there.com" or an abbreviation
    assert cutter.feed(" How") == ["Hello there."]
    assert cutter.feed(" are you") == []
    assert cutter.feed("?\n") == ["How are you?"]
    assert cutter.feed("Dr.") == [] and cutter.feed(" Who") == []
    assert cutter.flush() == ["Dr. Who"]


def test_sentence_cutter_cuts_long_sentences() -> None:
    words = " ".join(f"w{i}" for i in range(100))  # 389 characters, no punctuation
    text = f"{words[:150]}, {words[150:]}."
    cutter = SentenceCutter()
    pieces = cutter.feed(text) + cutter.flush()
    assert all(len(p) <= 200 for p in pieces) and len(pieces) >= 2
    assert pieces[0] == words[:150] + ","  # at the comma past the middle
    assert " ".join(pieces) == text
    no_space = "x" * 450
    cutter = SentenceCutter()
    assert cutter.feed(no_space) + cutter.flush() == ["x" * 200, "x" * 200, "x" * 50]


def test_sentence_cutter_does_not_depend_on_how_text_arrives() -> None:
    texts = [
        'Dr. Smith said "yes." Then, e.g. at 3.14 p.m., the U.S. team left... Why? 你好。好！',
        "## Title\n- **one.** two\n\n" + "long words " * 30 + "end.",
    ]
    rng = random.Random(0)
    for text in texts:
        for _ in range(25):
            cutter = SentenceCutter(max_chars=rng.choice([40, 200]))
            reference = SentenceCutter(max_chars=cutter.max_chars)
            expected = reference.feed(text) + reference.flush()
            got: list[str] = []
            i = 0
            while i < len(text):
                n = rng.randint(1, 6)
                got += cutter.feed(text[i : i + n])
                i += n
            assert got + cutter.flush() == expected


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**Bold** and *italic* and __under__", "Bold and italic and under"),
        ("### A heading", "A heading"),
        ("- a bullet", "a bullet"),
        ("* star bullet", "star bullet"),
        ("12. numbered item", "numbered item"),
        ("> quoted text", "quoted text"),
        ("See [the docs](https://example.com/a_b) now.", "See the docs now."),
        ("Run `pip install x`", "Run pip install x"),
        ("```python", ""),
        ("snake_case stays, so does C# and 3 * 4", "snake_case stays, so does C# and 3 4"),
        ("~~old~~ new", "old new"),
        ("|---|:---:|", ""),
        ("| cats | dogs |", "cats, dogs"),
    ],
)
def test_strip_markdown(text: str, spoken: str) -> None:
    assert strip_markdown(text) == spoken
