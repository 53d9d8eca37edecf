"""Talking-head engines as plug-ins: the protocol, the registry and the built-in engines.

    from avatarlab.engines import get_engine, list_engines, engine_options
    engine = get_engine("wav2lip", {"checkpoint": "wav2lip_gan.pth", "batch_size": 32})

Built-in engines are registered lazily: ``warp`` and ``wav2lip`` (driven by speech:
speak, dub, serve), ``reenact`` and ``liveportrait`` (driven by a face: reenact);
listing them or reading their options (``WarpOptions``, ``Wav2LipOptions``, ...)
imports neither OpenCV nor torch. Add an engine with :func:`register_engine` or the ``avatarlab.engines``
entry-point group; nothing in the tasks layer, the CLI or the server names engines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab._lazy import lazy_exports
from avatarlab.engines.base import (
    ENGINES,
    Avatar,
    Driver,
    Drives,
    Engine,
    Frame,
    Source,
    engine_drives,
    engine_options,
    get_engine,
    lazy_engine,
    list_engines,
    register_engine,
    resolve_engine_options,
    unregister_engine,
)
from avatarlab.weights import add_provider

if TYPE_CHECKING:
    from avatarlab.engines.warp.options import WarpOptions
    from avatarlab.engines.wav2lip.options import Wav2LipOptions

lazy_engine(
    "warp", "avatarlab.engines.warp.engine:WarpEngine", "avatarlab.engines.warp.options:WarpOptions"
)
lazy_engine(
    "reenact",
    "avatarlab.engines.reenact.engine:ReenactEngine",
    "avatarlab.engines.reenact.options:FaceReenactOptions",
    drives="motion",
)
lazy_engine(
    "wav2lip",
    "avatarlab.engines.wav2lip.engine:Wav2LipEngine",
    "avatarlab.engines.wav2lip.options:Wav2LipOptions",
)
lazy_engine(
    "liveportrait",
    "avatarlab.engines.liveportrait.engine:LivePortraitEngine",
    "avatarlab.engines.liveportrait.options:LivePortraitOptions",
    drives="motion",
)

# Importing these packages registers their official checkpoints (no torch at import).
for _package in ("wav2lip", "gfpgan", "codeformer", "liveportrait"):
    add_provider(f"avatarlab.engines.{_package}")

_LAZY = {
    "WarpOptions": "avatarlab.engines.warp.options",
    "Wav2LipOptions": "avatarlab.engines.wav2lip.options",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "ENGINES",
    "Avatar",
    "Driver",
    "Engine",
    "Frame",
    "Drives",
    "Source",
    "WarpOptions",
    "Wav2LipOptions",
    "engine_drives",
    "engine_options",
    "get_engine",
    "lazy_engine",
    "list_engines",
    "register_engine",
    "resolve_engine_options",
    "unregister_engine",
]
