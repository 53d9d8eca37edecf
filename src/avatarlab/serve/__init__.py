"""The live talking-avatar server: web page, HTTP API, WebRTC media, sessions.

    from avatarlab.serve import ServeOptions, create_app, serve
    serve(ServeOptions(avatars=("portrait.jpg",)))      # http://127.0.0.1:8010/

See docs/serve.md for the API and the security notes.
"""

from avatarlab.serve.app import create_app
from avatarlab.serve.options import ServeOptions
from avatarlab.serve.run import serve

__all__ = ["ServeOptions", "create_app", "serve"]
