"""Options of the live avatar server; every ``avatarlab serve`` flag maps onto one field."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import OptionError
from avatarlab.tasks.postprocess import BackgroundOptions

FPS = round(DEFAULT_FPS)
"""Video frame rate of every session (frames per second)."""
AUDIO_RATE = 48_000
"""Sample rate of the audio track (Hz): WebRTC's Opus rate, so nothing resamples it again."""
AUDIO_FRAME_S = 0.02
"""Duration of one audio frame handed to WebRTC (20 ms, Opus's usual packet)."""
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

ListenMode = Literal["off", "echo", "chat"]
"""What a session does with the viewer's microphone: nothing, repeat it, or answer it."""
Workers = Literal["process", "thread"]


@dataclass(frozen=True)
class ServeOptions(BackgroundOptions):
    """How the live server listens, what it accepts and how long sessions live.

    The background fields (``background``, ``mask_smoothing``, from
    :class:`~avatarlab.tasks.postprocess.BackgroundOptions`) apply to every streamed frame,
    speech-driven or camera-driven.

    Attributes:
        avatars: portraits (images) or videos offered on the page; the first is the default.
            None given: the bundled portrait (``avatarlab.assets.default_portrait``).
        host: interface to listen on; loopback by default so nothing outside the machine
            can connect. WebRTC media is offered on the same address when it is a specific IP.
        port: TCP port of the HTTP server.
        token: when set, every API call needs ``Authorization: Bearer <token>`` (the
            WebSocket takes ``?token=``); the page asks for it once.
        max_sessions: sessions alive at once (each renders 25 frames a second).
        session_timeout_s: a session nobody has spoken through (no ``say``) for this
            long is closed; the page shows that it ended.
        max_text_chars: longest text one ``say`` accepts; longer text is refused (422).
        max_audio_bytes: largest audio upload (413 above it).
        max_audio_s: longest uploaded speech (422 above it).
        max_avatar_bytes: largest avatar upload (413 above it).
        max_avatar_s: longest avatar video upload (422 above it; analysing takes a while).
        max_avatars: uploaded avatars kept; the oldest unused one is dropped beyond it.
        say_burst: ``say`` calls a session may make back to back.
        say_per_s: sustained ``say`` calls per second per session (429 beyond the burst).
        max_side: longest side (pixels) of the streamed video; larger avatars are scaled down.
        voice: espeak-ng voice for text.
        extra_hosts: host names (besides loopback and ``host``) the HTTP ``Host`` header
            may carry.
        engine: the engine that renders every session (any registered engine that can
            stream, see ``avatarlab.engines.list_engines()``).
        engine_options: the engine's ``Options`` or a dict of its fields (checked here
            against ``engine``); ``None``: its defaults.
        camera: offer "drive with my camera": the viewer's camera, sent over the
            session's WebRTC connection, moves the avatar (``POST /sessions/{id}/drive``).
        motion_engine: the engine that reenacts the avatar from the camera (a registered
            motion engine, see ``avatarlab.engines.list_engines("motion")``).
        camera_side: longest side (pixels) camera frames are scaled to before the face
            in them is tracked (smaller: faster, coarser motion).
        listen: what new sessions do with the microphone the page sends: ``off``,
            ``echo`` (the avatar repeats what it heard) or ``chat`` (a language model
            answers; needs ``llm``). Each session can switch (``POST .../listen``).
        llm: base URL of an OpenAI-compatible chat endpoint you run (llama.cpp server,
            vLLM, Ollama, a cloud API), e.g. ``http://127.0.0.1:8080/v1``. Unset: no chat,
            and the server makes no network connection of its own.
        llm_model: model name sent to the endpoint (unset: the client's default).
        llm_key_env: name of the environment variable that holds the endpoint's API key
            (sent as a bearer token); the key itself never goes on the command line.
        system_prompt: the model's instructions (unset: brief spoken answers).
        llm_timeout_s: longest wait for a whole reply (unset: the client's default); past
            it the avatar apologises and the session goes on.
        voice_rate: speaking rate of text, words per minute (unset: the voice's own).
        voice_pitch: pitch of text, 0-100 (unset: the voice's own; espeak voices only).
        piper_voices: Piper ``.onnx`` voices offered besides the espeak-ng ones (needs
            ``pip install piper-tts``); listed by ``GET /voices`` as ``piper:<name>``.
        rtmp: also push every session, H.264 + AAC, to this RTMP/RTMPS URL; ``{session}``
            in it is replaced by the session id (without it, sessions share the URL).
            Reconnects with backoff when the server goes away.
        record: also record every session to ``<record>/session-<id>.mp4``.
        workers: render each session in its own worker ``process`` (sessions use all
            cores) or in a ``thread`` of the server (less memory, shares one core's GIL).
    """

    avatars: tuple[Path, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8010
    token: str | None = None
    max_sessions: int = 4
    session_timeout_s: float = 600.0
    max_text_chars: int = 2000
    max_audio_bytes: int = 10 * 1024 * 1024
    max_audio_s: float = 120.0
    max_avatar_bytes: int = 20 * 1024 * 1024
    max_avatar_s: float = 60.0
    max_avatars: int = 8
    say_burst: int = 5
    say_per_s: float = 2.0
    max_side: int = 512
    voice: str = "en-us"
    extra_hosts: tuple[str, ...] = ()
    engine: str = "warp"
    engine_options: Any = None
    camera: bool = True
    motion_engine: str = "reenact"
    camera_side: int = 320
    listen: ListenMode = "off"
    llm: str | None = None
    llm_model: str | None = None
    llm_key_env: str | None = None
    system_prompt: str | None = None
    llm_timeout_s: float | None = None
    voice_rate: int | None = None
    voice_pitch: int | None = None
    piper_voices: tuple[Path, ...] = ()
    rtmp: str | None = None
    record: Path | None = None
    workers: Workers = "process"

    def __post_init__(self) -> None:
        from avatarlab.engines import resolve_engine_options

        super().__post_init__()
        object.__setattr__(self, "avatars", tuple(Path(p) for p in self.avatars))
        object.__setattr__(self, "extra_hosts", tuple(self.extra_hosts))
        resolve_engine_options(self.engine, self.engine_options)  # fail now, not at start-up
        if not 0 < self.port < 65536:
            raise OptionError(f"port must be in 1..65535, got {self.port}")
        if self.token is not None and len(self.token) < 8:
            raise OptionError("token must have at least 8 characters (use a random string)")
        positive = {
            "max_sessions": self.max_sessions,
            "session_timeout_s": self.session_timeout_s,
            "max_text_chars": self.max_text_chars,
            "max_audio_bytes": self.max_audio_bytes,
            "max_audio_s": self.max_audio_s,
            "max_avatar_bytes": self.max_avatar_bytes,
            "max_avatar_s": self.max_avatar_s,
            "max_avatars": self.max_avatars,
            "say_burst": self.say_burst,
            "say_per_s": self.say_per_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise OptionError(f"{name} must be positive, got {value}")
        if self.camera:
            from avatarlab.engines import engine_drives, list_engines

            if engine_drives(self.motion_engine) != "motion":
                raise OptionError(
                    f"motion_engine {self.motion_engine!r} is driven by speech: name a motion "
                    f"engine ({', '.join(list_engines('motion')) or 'none registered'})"
                )
        if not 64 <= self.camera_side <= 1080:
            raise OptionError(f"camera_side must be in 64..1080 pixels, got {self.camera_side}")
        if self.max_side < 64:
            raise OptionError(f"max_side must be at least 64 pixels, got {self.max_side}")
        for path in self.avatars:
            if not path.is_file():
                raise OptionError(f"avatar {path} does not exist: pass a portrait image or a video")
        object.__setattr__(self, "piper_voices", tuple(Path(p) for p in self.piper_voices))
        if self.record is not None:
            object.__setattr__(self, "record", Path(self.record))
        if self.listen not in ("off", "echo", "chat"):
            raise OptionError(f"listen must be off, echo or chat, got {self.listen!r}")
        if self.listen == "chat" and self.llm is None:
            raise OptionError("listen 'chat' needs a language model: pass --llm URL")
        if self.workers not in ("process", "thread"):
            raise OptionError(f"workers must be process or thread, got {self.workers!r}")
        self.llm_options()  # bad URL, missing key variable: fail now, not in a session
        if self.rtmp is not None or self.record is not None:
            from avatarlab.serve.outputs import check_target

            if self.rtmp is not None:
                check_target(self.rtmp.replace("{session}", "x"))
            if self.record is not None:
                if not self.record.is_dir():
                    raise OptionError(
                        f"record folder {self.record} does not exist: create it first"
                    )
                check_target(str(self.record / "check.mp4"))

    def llm_options(self) -> Any:
        """The chat client's options (:class:`avatarlab.serve.llm.LLMOptions`), or ``None``
        without ``llm``."""
        if self.llm is None:
            return None
        from avatarlab.serve.llm import LLMOptions

        given: dict[str, Any] = {
            "model": self.llm_model,
            "key_env": self.llm_key_env,
            "system_prompt": self.system_prompt,
            "timeout_s": self.llm_timeout_s,
        }
        return LLMOptions(url=self.llm, **{k: v for k, v in given.items() if v is not None})

    @property
    def is_loopback(self) -> bool:
        """Whether the server listens on the loopback interface only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """Values the ``Host`` header may name (guards against DNS rebinding)."""
        if self.host in ("0.0.0.0", "::"):
            return ("*",)
        return (*LOOPBACK_HOSTS, self.host, *self.extra_hosts)
