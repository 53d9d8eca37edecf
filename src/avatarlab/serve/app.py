"""The ASGI application: the web page, the HTTP API, the WebSocket event channel.

Routes (all under the bearer token when one is set, except the page and ``/health``):

- ``GET /``: the page (static files shipped in the package, no CDN, works offline);
- ``GET /health``;
- ``GET /avatars``, ``POST /avatars`` (upload a portrait or video);
- ``POST /sessions``, ``GET /sessions/{id}``, ``DELETE /sessions/{id}``;
- ``POST /sessions/{id}/offer``: WebRTC SDP offer in, answer out;
- ``POST /sessions/{id}/say``: text (JSON, text/plain, form) or audio (form, raw);
- ``POST /sessions/{id}/stop``;
- ``POST /sessions/{id}/drive``: ``{"mode": "camera"|"speech"}``, what moves the avatar;
- ``POST /sessions/{id}/listen``: ``{"mode": "off"|"echo"|"chat"}``, what the microphone does;
- ``POST /sessions/{id}/chat``: typed text the language model answers, spoken by the avatar;
- ``POST /sessions/{id}/voice``: the session's voice, rate and pitch;
- ``GET /voices``: every voice (espeak-ng by language, configured Piper voices);
- ``GET /avatars/{id}/preview``: a still of the avatar (the page shows it before Start);
- ``WS /sessions/{id}/events``: speech start/end, peer state; closing it ends the session.

Every user mistake is a 4xx with a sentence that says what to do; an unexpected
failure in one request is a 500 for that request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from avatarlab._version import __version__
from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.serve.avatars import AvatarCatalog, AvatarEntry, clean_name
from avatarlab.serve.options import ServeOptions
from avatarlab.serve.session import (
    SessionManager,
    VoiceSettings,
    check_voice,
    preload_listening,
    voice_list,
)
from avatarlab.serve.stream import Backend
from avatarlab.serve.uploads import (
    PrivateDir,
    decode_utf8,
    media_type,
    parse_json_object,
    parse_multipart,
    parse_urlencoded,
    read_body,
    sniff,
    too_large_message,
)
from avatarlab.speech.tts import check_text

log = logging.getLogger("avatarlab.serve")

FORM_SLACK = 64 * 1024
"""Bytes a multipart body may carry beyond its file (boundaries, headers, text fields)."""
MAX_SDP_CHARS = 100_000
WARM_TICKS = 5
"""Ticks rendered at start-up on the default avatar (the engine's first frames are slow)."""
VOICE_PATTERN = r"^[A-Za-z0-9_+/.:\-]{1,120}$"
"""Characters of a voice id (``en-us``, ``en-us+f3``, ``sit/yue``, ``piper:lessac``); the id
must also be in the voice catalogue (``GET /voices``)."""

STATIC = resources.files("avatarlab.serve") / "static"


# -- request and response models (they document the API in /openapi.json) ----------


class SessionCreate(BaseModel):
    avatar: str | None = Field(None, description="Avatar id from GET /avatars; default: the first.")
    listen: Literal["off", "echo", "chat"] | None = Field(
        None, description="What the microphone does; default: the server's --listen."
    )


class ListenInfo(BaseModel):
    mode: Literal["off", "echo", "chat"]
    microphone: bool = Field(description="This session's WebRTC offer sends a microphone.")
    chat: bool = Field(description="The server has a language model (chat mode possible).")
    heard: int = Field(description="Utterances recognised so far.")
    barge_ins: int = Field(description="Times the viewer's voice interrupted the avatar.")
    last_heard: str | None
    reply_latency_s: float | None = Field(
        description="Last answer: from the end of the viewer's speech to the avatar's first "
        "audio (s, server clock)."
    )


class VoiceInfo(BaseModel):
    voice: str = Field(pattern=VOICE_PATTERN, description="Voice id from GET /voices.")
    rate_wpm: int | None = Field(None, description="Words per minute; null: the voice's own.")
    pitch: int | None = Field(None, description="0-100; null: the voice's own.")


class OutputInfo(BaseModel):
    target: str = Field(description="RTMP server or recording file (no stream key shown).")
    state: str
    frames_sent: int
    frames_dropped: int
    reconnects: int
    last_error: str | None


class CameraInfo(BaseModel):
    available: bool = Field(description="The server drives avatars with a camera.")
    offered: bool = Field(description="This session's WebRTC offer sends camera video.")
    state: Literal["off", "waiting", "live"] = Field(
        description="off: speech drives; waiting: camera mode, no frame yet (or none for "
        "a moment); live: the camera drives the avatar."
    )
    frames_received: int = Field(description="Camera frames that reached the renderer's inbox.")
    frames_dropped: int = Field(
        description="Camera frames replaced by a newer one before they were rendered."
    )
    frames_rendered: int
    render_ms: float = Field(description="Mean time from taking a camera frame to its output (ms).")
    latency_ms_p50: float | None = Field(
        description="Median time from a camera frame's arrival to its avatar frame going to "
        "WebRTC, over the last 250 output frames (ms)."
    )
    latency_ms_p90: float | None = Field(description="90th percentile of the same (ms).")
    latency_samples: int


class SessionInfo(BaseModel):
    id: str
    avatar: str
    width: int
    height: int
    fps: int
    audio_rate: int
    speaking: bool
    utterance: int | None
    utterances: int
    peer: str | None
    frames_rendered: int
    frames_skipped: int
    clock_slips: int
    render_ms: float = Field(description="Mean time to render one frame (ms).")
    closed: bool
    idle_timeout_s: float
    drive: Literal["speech", "camera"] = Field(description="What moves the avatar now.")
    camera: CameraInfo
    listen: ListenInfo
    voice: VoiceInfo
    outputs: list[OutputInfo]


class VoiceEntry(BaseModel):
    id: str = Field(description="What POST .../voice and say's voice take.")
    name: str
    language: str = Field(description="Language code (en-us, fr-fr, cmn, ...).")
    language_name: str = Field(description="The language in English, for grouping.")
    engine: Literal["espeak", "piper"]
    controls: list[str] = Field(description="Settings the voice honours: rate, pitch, ...")


class Listen(BaseModel):
    mode: Literal["off", "echo", "chat"] = Field(
        ...,
        description="off: the microphone is ignored; echo: the avatar repeats what it hears; "
        "chat: the language model answers what it hears.",
    )


class ChatText(BaseModel):
    text: str = Field(..., description="What the viewer says to the avatar.")


class Drive(BaseModel):
    mode: Literal["camera", "speech"] = Field(
        ...,
        description="camera: the session's camera video (sent over its WebRTC connection) "
        "drives the avatar; speech: the talking avatar.",
    )


class Offer(BaseModel):
    sdp: str = Field(..., max_length=MAX_SDP_CHARS, description="The browser's SDP offer.")
    type: Literal["offer"] = "offer"


class Answer(BaseModel):
    sdp: str
    type: Literal["answer"] = "answer"


class SayText(BaseModel):
    text: str = Field(..., description="What the avatar says (UTF-8, limited by max_text_chars).")
    voice: str | None = Field(None, pattern=VOICE_PATTERN, description="espeak-ng voice.")


class SayResult(BaseModel):
    utterance: int
    interrupted: int | None = Field(None, description="Utterance this one cut off, if any.")
    sentences: int | None = Field(None, description="Sentences of a text, spoken in turn.")
    seconds: float | None = Field(None, description="Length of an audio upload.")


class AvatarInfo(BaseModel):
    id: str
    name: str
    kind: str
    uploaded: bool
    ready: bool


class Health(BaseModel):
    status: str
    ready: bool = Field(description="The default avatar is analysed and the engine warmed up.")
    version: str
    engine: str
    motion_engine: str | None = Field(description="Engine of camera driving; null: none.")
    sessions: int
    max_sessions: int
    llm: bool = Field(description="A language model answers in chat mode.")
    listen: str = Field(description="Listening mode of new sessions.")
    voice: str = Field(description="Voice sessions start with.")


_SAY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SayText.model_json_schema()},
            "text/plain": {"schema": {"type": "string"}},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "voice": {"type": "string"}},
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "voice": {"type": "string"},
                        "audio": {"type": "string", "format": "binary"},
                    },
                }
            },
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_AVATAR_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "video/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        400: "Malformed request (bad JSON, bad UTF-8, bad SDP)",
        401: "Missing or wrong bearer token",
        404: "Unknown session or avatar",
        409: "Not possible in the session's state (already connected, no camera video, "
        "camera driving on, no language model)",
        413: "Upload or body too large",
        415: "Unsupported upload type",
        422: "Invalid value (too long, undecodable, no face)",
        429: "Too many say calls; see Retry-After",
    }.items()
}


# -- middleware -------------------------------------------------------------------


class GuardMiddleware:
    """Rejects oversized bodies (413) and cross-site requests (403) before any route runs.

    ``Origin``, when a browser sends one, must name this server: a web page on another
    site cannot make a local avatar speak or upload files (CSRF / DNS rebinding).
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope.get("method") not in ("GET", "HEAD")
        if (
            origin
            and changes_state
            and urlsplit(origin).netloc.lower() != headers.get("host", "").lower()
        ):
            await _deny(scope, receive, send, 403, "cross-site request refused")
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _deny(scope, receive, send, 413, too_large_message(int(length), self.max_body))
            return
        seen = 0
        denied = False

        async def limited_receive() -> Message:
            nonlocal seen, denied
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body and not denied:
                    denied = True
                    scope.setdefault("state", {})["body_refused"] = True  # not a hang-up
                    await _deny(
                        scope, receive, send, 413, too_large_message(seen, self.max_body, True)
                    )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not denied:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


# -- the application --------------------------------------------------------------


def _builtin_portrait(folder: PrivateDir) -> Path:
    """The bundled portrait as a file in the server's private folder (the default avatar)."""
    from avatarlab.assets import default_portrait
    from avatarlab.media.files import write_image

    path = folder.path / "astronaut.png"
    write_image(path, default_portrait())
    return path


def create_app(options: ServeOptions | None = None, backend: Backend | None = None) -> FastAPI:
    """The server's ASGI app. ``backend`` defaults to ``options.engine``'s streaming form."""
    options = options or ServeOptions()
    if backend is None:
        from avatarlab.serve.backend import EngineBackend

        backend = EngineBackend(
            options.engine,
            options.engine_options,
            options.max_side,
            options.motion_engine if options.camera else None,
            background=options,
            processes=options.workers == "process",
        )
    render_executor = ThreadPoolExecutor(
        max_workers=max(options.max_sessions, os.cpu_count() or 1), thread_name_prefix="render"
    )
    tts_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
    prepare_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
    uploads = PrivateDir()
    catalog = AvatarCatalog(
        backend,
        options.avatars or [_builtin_portrait(uploads)],
        options.max_avatars,
        prepare_executor,
        options.max_avatar_s,
        options.max_side,
    )
    if options.piper_voices:
        from avatarlab.speech.voices import add_piper_voice

        for path in options.piper_voices:
            add_piper_voice(path)  # a missing runtime or a broken file fails the start
    chat = None
    if options.llm is not None:
        from avatarlab.serve.llm import ChatClient

        chat = ChatClient(options.llm_options())
    manager = SessionManager(options, backend, catalog, render_executor, tts_executor, chat)

    async def _warm_up(app: FastAPI, entry: AvatarEntry) -> None:
        """Prepare ``entry`` and render a few ticks, so one-time engine set-up (models,
        caches) is done before the first session needs frames in real time. A default
        avatar without a face is logged; the server still serves uploads."""
        try:
            prepared = await catalog.prepare(entry)
        except AvatarLabError as exc:
            log.error("avatar %s cannot be used: %s", entry.path, exc)
            app.state.ready = True
            return

        def render() -> None:
            stream = backend.open_stream(prepared)
            try:
                for _ in range(WARM_TICKS):
                    stream.next_tick()
            finally:
                stream.close()

        await asyncio.get_running_loop().run_in_executor(render_executor, render)
        app.state.ready = True
        # The first utterance a server hears would otherwise wait ~0.4 s for a recogniser.
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(
                manager.listen_executor, preload_listening
            )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        app.state.ready = catalog.default is None
        warm = None
        if catalog.default is not None:  # analyse the default avatar before anyone asks
            warm = asyncio.get_running_loop().create_task(_warm_up(app, catalog.default))
        try:
            yield
        finally:
            if warm is not None:
                warm.cancel()
                with contextlib.suppress(BaseException):
                    await warm
            await manager.close_all()
            close_backend = getattr(backend, "close", None)
            if close_backend is not None:  # the spare render workers
                await asyncio.get_running_loop().run_in_executor(None, close_backend)
            render_executor.shutdown(wait=False, cancel_futures=True)
            tts_executor.shutdown(wait=False, cancel_futures=True)
            prepare_executor.shutdown(wait=False, cancel_futures=True)
            uploads.cleanup()

    app = FastAPI(
        title="avatarlab live avatar",
        version=__version__,
        description="Talking avatar sessions over WebRTC. See docs/serve.md.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN: the schema is
        redoc_url=None,  # at /openapi.json, and the server stays offline-clean.
        openapi_url=None,  # served below, behind the token like the API it describes
    )
    app.state.options = options
    app.state.manager = manager
    app.state.catalog = catalog
    app.add_middleware(
        GuardMiddleware,
        max_body=max(options.max_audio_bytes, options.max_avatar_bytes) + FORM_SLACK,
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(options.allowed_hosts))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = [e for e in exc.errors() if e.get("type") == "json_invalid"]
        if bad_json:  # a syntax error is a malformed request (400), like every other body
            reason = bad_json[0].get("ctx", {}).get("error", "syntax error")
            return JSONResponse(
                {"detail": f"request body is not valid JSON: {reason}"}, status_code=400
            )
        return JSONResponse(
            {"detail": f"invalid request: {_problems(exc.errors())}"}, status_code=422
        )

    @app.exception_handler(AvatarLabError)
    async def _avatarlab(request: Request, exc: AvatarLabError) -> JSONResponse:
        return JSONResponse({"detail": uploads.scrub(str(exc))}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def _hung_up(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up mid-request (or GuardMiddleware cut the body off and already
        # answered 413): one line, not the traceback a handler for Exception would log
        # (Starlette re-raises those for the server).
        if not getattr(request.state, "body_refused", False):
            log.info("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    def require_token(request: Request) -> None:
        if options.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        # Starlette decodes header values as latin-1: encoding back gives the raw bytes.
        raw = given.strip().encode("latin-1", "replace")
        if scheme.lower() != "bearer" or not _token_matches(raw, options.token):
            raise HTTPException(
                401,
                "missing or wrong token: send 'Authorization: Bearer <token>' (the page: open it "
                "with #token=<token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(dependencies=[Depends(require_token)], responses=_ERRORS)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        """Liveness: the server answers and how many sessions run."""
        return {
            "status": "ok",
            "ready": app.state.ready,
            "version": __version__,
            "engine": backend.name,
            "motion_engine": backend.motion_engine if manager.camera else None,
            "sessions": len(manager.sessions),
            "max_sessions": options.max_sessions,
            "llm": chat is not None,
            "listen": options.listen,
            "voice": options.voice,
        }

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi_schema() -> JSONResponse:
        """The OpenAPI schema of this API."""
        return JSONResponse(app.openapi())

    @api.get("/avatars", response_model=list[AvatarInfo])
    async def list_avatars() -> list[dict[str, Any]]:
        """Avatars sessions can use: the server's own, then uploads."""
        return [e.to_dict() for e in catalog.list()]

    @api.post("/avatars", response_model=AvatarInfo, status_code=201, openapi_extra=_AVATAR_BODY)
    async def upload_avatar(request: Request) -> dict[str, Any]:
        """Upload a portrait (JPEG/PNG/WebP) or a short video (MP4/WebM); it is analysed now
        (422 when it shows no face or the video is longer than ``max_avatar_s``)."""
        ctype = media_type(request)
        body = await read_body(request, options.max_avatar_bytes + FORM_SLACK)
        if ctype == "multipart/form-data":
            parts = [
                p for p in parse_multipart(request.headers["content-type"], body) if p.filename
            ]
            if len(parts) != 1:
                raise HTTPException(422, "send exactly one file, in a form field named 'file'")
            data, declared, filename = (
                bytes(parts[0].data),
                parts[0].content_type,
                parts[0].filename,
            )
        elif ctype.startswith(("image/", "video/")):
            data, declared, filename = body, ctype, None
        else:
            raise HTTPException(
                415,
                f"unsupported Content-Type {ctype or '(none)'}: send multipart/form-data, image/* or video/*",
            )
        if len(data) > options.max_avatar_bytes:
            raise HTTPException(413, too_large_message(len(data), options.max_avatar_bytes))
        kind, ext = sniff(data, ("image", "video"), declared)
        path = uploads.write(data, ext)
        entry = await catalog.add_upload(path, clean_name(filename, f"upload{ext}"), kind)
        return entry.to_dict()

    @api.get("/avatars/{avatar_id}/preview", responses={200: {"content": {"image/jpeg": {}}}})
    async def avatar_preview(avatar_id: str) -> Response:
        """A JPEG still of the avatar at the stream size (the page's picture before Start)."""
        entry = catalog.get(avatar_id)
        if entry is None:
            raise HTTPException(404, f"unknown avatar {avatar_id!r}")
        data = await asyncio.get_running_loop().run_in_executor(
            prepare_executor, catalog.preview, entry
        )
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=60"})

    @api.get("/voices", response_model=list[VoiceEntry])
    async def voices() -> list[dict[str, Any]]:
        """Voices text can be spoken with: espeak-ng's, sorted by language, then the
        server's Piper voices."""
        return [
            v.to_dict()
            for v in await asyncio.get_running_loop().run_in_executor(tts_executor, voice_list)
        ]

    @api.post("/sessions", response_model=SessionInfo, status_code=201)
    async def create_session(body: SessionCreate | None = None) -> dict[str, Any]:
        """Start a session on an avatar; then send an SDP offer to watch it."""
        session = await manager.create(body.avatar if body else None, body.listen if body else None)
        return session.status()

    @api.get("/sessions/{session_id}", response_model=SessionInfo)
    async def session_status(session_id: str) -> dict[str, Any]:
        """Whether the avatar speaks, the peer's state, frame counters."""
        return manager.get(session_id).status()

    @api.delete("/sessions/{session_id}", status_code=204)
    async def delete_session(session_id: str) -> Response:
        """End a session: its media stops and its peer connection closes."""
        manager.get(session_id)
        await manager.close(session_id, "deleted")
        return Response(status_code=204)

    @api.post("/sessions/{session_id}/offer", response_model=Answer)
    async def offer(session_id: str, body: Offer) -> dict[str, str]:
        """Exchange SDP: the avatar's video (25 fps) and audio (48 kHz) go to the offerer."""
        session = manager.get(session_id)
        return {"sdp": await session.connect(body.sdp), "type": "answer"}

    @api.post("/sessions/{session_id}/stop", status_code=204)
    async def stop(session_id: str) -> Response:
        """Silence the avatar (barge-in without new speech)."""
        manager.get(session_id).stop()
        return Response(status_code=204)

    @api.post("/sessions/{session_id}/drive", response_model=SessionInfo)
    async def drive(session_id: str, body: Drive) -> dict[str, Any]:
        """Switch what moves the avatar: ``camera`` (the video this session's WebRTC offer
        sends, reenacted onto the avatar and streamed back at 25 fps in place of the
        talking stream; speech stops) or ``speech``. The first switch to ``camera`` on an
        avatar analyses it for the motion engine (a few seconds). Camera driving ends by
        itself, back to ``speech``, when no camera frame arrives for 1 s (10 s at the start).
        """
        return await manager.get(session_id).set_drive(body.mode)

    @api.post("/sessions/{session_id}/listen", response_model=SessionInfo)
    async def listen(session_id: str, body: Listen) -> dict[str, Any]:
        """What the microphone this session's WebRTC offer sends does: ``off``, ``echo``
        (the avatar repeats what it hears) or ``chat`` (the language model answers, 409
        without one). Speaking while the avatar talks interrupts it in both modes."""
        return manager.get(session_id).set_listen(body.mode)

    @api.post("/sessions/{session_id}/chat", status_code=202)
    async def chat_text(session_id: str, body: ChatText) -> dict[str, Any]:
        """Type to the avatar: the language model answers and the avatar speaks the reply
        sentence by sentence as it is written (409 without a language model)."""
        session = manager.get(session_id)
        session.require_speech()
        _check_rate(session.limiter.retry_after())
        text = _check_text(body.text, options.max_text_chars)
        _consume(session)
        await session.chat_text(text)
        return {"accepted": True}

    @api.post("/sessions/{session_id}/voice", response_model=SessionInfo)
    async def set_voice(session_id: str, body: VoiceInfo) -> dict[str, Any]:
        """Speak this session's text (typed, echoed, answered) with another voice, rate
        or pitch (422 for an unknown voice or a value out of range)."""
        session = manager.get(session_id)
        settings = VoiceSettings(body.voice, body.rate_wpm, body.pitch)
        await asyncio.get_running_loop().run_in_executor(tts_executor, check_voice, settings)
        return session.set_voice(settings)

    @api.post(
        "/sessions/{session_id}/say",
        response_model=SayResult,
        status_code=202,
        openapi_extra=_SAY_BODY,
    )
    async def say(session_id: str, request: Request) -> dict[str, Any]:
        """Make the avatar speak text or an audio file, interrupting what it says now.

        Text: JSON ``{"text", "voice"}``, ``text/plain``, or form field ``text``. Audio:
        form field ``audio`` or a raw ``audio/*`` body (WAV, MP3, Ogg, FLAC, M4A, WebM).
        """
        session = manager.get(session_id)
        session.require_speech()
        _check_rate(session.limiter.retry_after())
        ctype = media_type(request)
        body = await read_body(request, options.max_audio_bytes + FORM_SLACK)
        text: str | None = None
        voice: str | None = None
        audio: tuple[bytes, str, str | None] | None = None  # data, declared type, file name
        if ctype == "application/json":
            try:
                parsed = SayText.model_validate(parse_json_object(body))
            except ValidationError as exc:
                raise HTTPException(422, f"invalid request: {_problems(exc.errors())}") from None
            text, voice = parsed.text, parsed.voice
        elif ctype == "text/plain":
            text = decode_utf8(body, "text")
        elif ctype == "application/x-www-form-urlencoded":
            fields = parse_urlencoded(body)
            text, voice = fields.get("text"), fields.get("voice")
        elif ctype == "multipart/form-data":
            for part in parse_multipart(request.headers["content-type"], body):
                if part.name == "audio" and part.filename is not None:
                    audio = (bytes(part.data), part.content_type, part.filename)
                elif part.name == "text":
                    text = decode_utf8(bytes(part.data), "form field 'text'")
                elif part.name == "voice":
                    voice = decode_utf8(bytes(part.data), "form field 'voice'")
        elif ctype.startswith("audio/"):
            audio = (body, ctype, None)
        else:
            raise HTTPException(
                415,
                f"unsupported Content-Type {ctype or '(none)'}: send application/json, text/plain, "
                "a form (urlencoded or multipart) or audio/*",
            )
        if (text is None) == (audio is None):
            raise HTTPException(422, "send either text or an audio file (not both, not neither)")
        if voice is not None:
            if not re.match(VOICE_PATTERN, voice):
                raise HTTPException(422, "voice must be a voice id from GET /voices, e.g. 'en-us'")
            await asyncio.get_running_loop().run_in_executor(
                tts_executor, check_voice, replace(session.voice, voice=voice)
            )
        if text is not None:
            text = _check_text(text, options.max_text_chars)
            _consume(session)
            return await session.say_text(text, voice or session.voice.voice)
        assert audio is not None
        data, declared, filename = audio
        if len(data) > options.max_audio_bytes:
            raise HTTPException(413, too_large_message(len(data), options.max_audio_bytes))
        _, ext = sniff(data, ("audio",), declared)
        path = uploads.write(data, ext)
        try:
            samples = await session.decode_audio(path, clean_name(filename, "the audio upload"))
        finally:
            path.unlink(missing_ok=True)
        _consume(session)
        if session.closed:
            raise HTTPException(404, "the session ended while the audio was decoded")
        return session.say_audio(samples)

    @app.websocket("/sessions/{session_id}/events")
    async def events(websocket: WebSocket, session_id: str) -> None:
        """Speech and peer events as JSON; the session ends when its last listener leaves."""
        token = websocket.query_params.get("token", "")
        if options.token is not None and not _token_matches(token, options.token):
            await websocket.close(code=1008, reason="missing or wrong token")
            return
        session = manager.sessions.get(session_id)
        if session is None or session.closed:
            await websocket.close(code=1008, reason="no such session")
            return
        await websocket.accept()
        queue = session.subscribe()
        await websocket.send_json({"type": "status", **session.status()})

        async def forward() -> None:
            while (event := await queue.get()) is not None:
                await websocket.send_json(event)

        sender = asyncio.create_task(forward())
        try:
            while True:
                message = await websocket.receive_text()
                with contextlib.suppress(ValueError, AttributeError):
                    if json.loads(message).get("type") == "ping":
                        await websocket.send_json({"type": "pong"})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            if session.unsubscribe(queue) == 0 and not session.closed:
                await manager.close(session_id, "page closed")

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _problems(errors: Sequence[Any]) -> str:
    """Pydantic errors as one line: ``field: message; ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}"
        for err in errors
    )


def _token_matches(given: str | bytes, expected: str) -> bool:
    """Constant-time token check on UTF-8 bytes.

    ``hmac.compare_digest`` raises ``TypeError`` for ``str`` with non-ASCII characters,
    so a stray non-ASCII token would be a 500 instead of a refusal.
    """
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, expected.encode("utf-8", "surrogatepass"))


def _check_rate(wait: float) -> None:
    if wait > 0:
        raise HTTPException(
            429,
            f"too many say calls on this session: retry in {wait:.1f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def _consume(session: Any) -> None:
    if not session.limiter.consume():
        _check_rate(session.limiter.retry_after() or 1.0 / session.limiter.per_s)


def _check_text(text: str, limit: int) -> str:
    """Strip control characters and check the length (422 when empty, wordless or too long)."""
    text = "".join(ch for ch in text if ch.isprintable() or ch in "\n\t").strip()
    if not text:
        raise HTTPException(422, "text is empty: send some words")
    try:
        check_text(text)
    except OptionError:
        raise HTTPException(
            422, "text has no words (only punctuation or symbols): send something to say"
        ) from None
    if len(text) > limit:
        raise HTTPException(
            422,
            f"text is {len(text)} characters; this server speaks at most {limit} per say "
            "(--max-text-chars): split it into several calls",
        )
    return text
