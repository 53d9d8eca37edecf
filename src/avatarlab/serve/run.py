"""Run the server: check the address, warn about exposure, hand the app to uvicorn."""

from __future__ import annotations

import logging
import socket

from avatarlab.errors import OptionError
from avatarlab.serve.app import create_app
from avatarlab.serve.options import ServeOptions

log = logging.getLogger("avatarlab.serve")


def check_port(host: str, port: int) -> None:
    """Raise :class:`OptionError` when ``host:port`` cannot be bound (in use, no such address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OptionError(
                f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port or --host"
            ) from None


def page_url(options: ServeOptions) -> str:
    """The address to open in a browser (with the token in the fragment, never sent to a log)."""
    host = "127.0.0.1" if options.host in ("0.0.0.0", "localhost") else options.host
    host = f"[{host}]" if ":" in host else host
    fragment = f"#token={options.token}" if options.token else ""
    return f"http://{host}:{options.port}/{fragment}"


def serve(options: ServeOptions | None = None, log_level: str = "info") -> None:
    """Serve the live avatar page and API until interrupted (blocking).

    Args:
        options: where to listen, avatars, limits; defaults to loopback port 8010.
        log_level: uvicorn's log level (``"warning"`` for quiet).

    Raises:
        OptionError: the address cannot be bound.
    """
    import uvicorn

    options = options or ServeOptions()
    check_port(options.host, options.port)
    if not options.is_loopback and options.token is None:
        log.warning(
            "listening on %s without --token: anyone who can reach this address can use it",
            options.host,
        )
    app = create_app(options)
    print(f"avatarlab serve: open {page_url(options)}", flush=True)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level=log_level, access_log=False
    )
    uvicorn.Server(config).run()
