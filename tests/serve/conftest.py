"""A live server on loopback (uvicorn in a thread) with the real ``warp`` engine, shared by
the WebRTC client test and the browser test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PORTRAIT = "image/painting.jpg"  # a close photo portrait (the README mislabels it)


@contextlib.contextmanager
def live_server(
    options: object, backend: object = None, ready_timeout: float = 60.0
) -> Iterator[str]:
    """Run ``create_app(options, backend)`` on 127.0.0.1 (a free port); yields its base URL
    once ``/health`` says the engine is warm."""
    import uvicorn

    from avatarlab.serve import create_app

    app = create_app(options, backend)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        while not httpx.get(f"{url}/health").json()["ready"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not warm up")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="session")
def warp_server(data_dir: Path) -> Iterator[str]:
    """Base URL of a server speaking with the warp engine on a real portrait."""
    from avatarlab.serve import ServeOptions

    with live_server(ServeOptions(avatars=(data_dir / PORTRAIT,), max_sessions=4)) as url:
        yield url


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored), for screenshots."""
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
