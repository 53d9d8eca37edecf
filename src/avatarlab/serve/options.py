"""Options of the live avatar server; every ``avatarlab serve`` flag maps onto one field."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
