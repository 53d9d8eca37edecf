"""avatarlab: talking avatars in one toolkit.

Analyse faces and speech, make a portrait or a video speak, stream it live,
prepare the field's datasets, and evaluate results with the field's metrics.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from avatarlab.errors import (
    AvatarLabError,
    MediaError,
    MissingWeightsError,
    NoAudioError,
    NoFaceError,
    NoVideoError,
)

if TYPE_CHECKING:
    from avatarlab.serve import ServeOptions


def serve(options: ServeOptions | None = None, log_level: str = "info", **fields: Any) -> None:
    """Run the live talking-avatar server until interrupted (page, HTTP API, WebRTC).

    ``serve(avatars=("me.jpg",), port=8010)`` or ``serve(ServeOptions(...))``; keyword
    ``fields`` override ``options``. Listens on 127.0.0.1 unless ``host`` says otherwise.
    """
    from dataclasses import replace

    from avatarlab.serve import ServeOptions
    from avatarlab.serve import serve as run

    run(replace(options or ServeOptions(), **fields), log_level=log_level)


# The public API, imported on first use so `import avatarlab` stays light.
_LAZY = {
    "speak": "avatarlab.generate",
    "dub": "avatarlab.generate",
    "SpeakOptions": "avatarlab.generate",
    "DubOptions": "avatarlab.generate",
    "evaluate": "avatarlab.evaluation",
    "prepare": "avatarlab.datasets",
    "PrepareOptions": "avatarlab.datasets",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'avatarlab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AvatarLabError",
    "DubOptions",
    "PrepareOptions",
    "SpeakOptions",
    "dub",
    "evaluate",
    "prepare",
    "speak",
    "MediaError",
    "MissingWeightsError",
    "NoAudioError",
    "NoFaceError",
    "NoVideoError",
    "__version__",
    "serve",
]
