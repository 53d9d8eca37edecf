"""The live talking-avatar server: web page, HTTP API, WebRTC media, sessions.

    from avatarlab.serve import ServeOptions, create_app, serve
    serve(ServeOptions(avatars=("portrait.jpg",)))      # http://127.0.0.1:8010/

See docs/serve.md for the API and the security notes. Names are imported on first
use, so reading :class:`ServeOptions` (the command line does) loads no web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab._lazy import lazy_exports

if TYPE_CHECKING:
    from avatarlab.serve.app import create_app
    from avatarlab.serve.options import ServeOptions
    from avatarlab.serve.run import serve

_LAZY = {"create_app": ".app", "ServeOptions": ".options", "serve": ".run"}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["ServeOptions", "create_app", "serve"]
