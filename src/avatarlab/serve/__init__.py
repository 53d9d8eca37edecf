"""The live talking-avatar server: web page, HTTP API, WebRTC media, sessions.

    from avatarlab.serve import ServeOptions, create_app, serve
    serve(ServeOptions(avatars=("portrait.jpg",)))      # http://127.0.0.1:8010/

See docs/serve.md for the API and the security notes. Names are imported on first
use, so reading :class:`ServeOptions` (the command line does) loads no web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatarlab.serve.app import create_app
    from avatarlab.serve.options import ServeOptions
    from avatarlab.serve.run import serve

_LAZY = {"create_app": "app", "ServeOptions": "options", "serve": "run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"avatarlab.serve.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ServeOptions", "create_app", "serve"]
