"""``serve --background``: every streamed frame goes over the chosen background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.serve import ServeOptions
from avatarlab.serve.backend import EngineBackend
from avatarlab.serve.options import AUDIO_RATE

PORTRAIT = "image/painting.jpg"  # head and shoulders in front of a plain wall
GREEN = (0, 255, 0)


def _corners(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.concatenate(
        [frame[: h // 8, : w // 8].reshape(-1, 3), frame[: h // 8, -w // 8 :].reshape(-1, 3)]
    )


def test_streamed_frames_get_the_background(data_dir: Path) -> None:
    options = ServeOptions(avatars=(data_dir / PORTRAIT,), background="#00ff00", max_side=256)
    backend = EngineBackend("warp", max_side=256, background=options)
    avatar = backend.prepare(data_dir / PORTRAIT)
    stream = backend.open_stream(avatar)
    stream.speak(np.zeros(AUDIO_RATE // 5, np.float32), utterance=1)
    try:
        frames = [stream.next_tick().frame for _ in range(3)]
    finally:
        stream.close()
    plain = EngineBackend("warp", max_side=256).open_stream(avatar)
    try:
        original = plain.next_tick().frame
    finally:
        plain.close()
    assert np.abs(_corners(original).astype(int) - GREEN).max(axis=1).min() > 100  # dark wall
    h, w = original.shape[:2]
    for frame in frames:
        assert frame.shape == original.shape
        assert (_corners(frame) == GREEN).all()
        centre = (slice(h // 3, h // 2), slice(2 * w // 5, 3 * w // 5))  # the face
        assert np.abs(frame[centre].astype(int) - original[centre].astype(int)).mean() < 8


def test_camera_driven_frames_get_the_background(data_dir: Path) -> None:
    from avatarlab.media import read_video
    from avatarlab.tasks import BackgroundOptions

    backend = EngineBackend(
        "warp",
        max_side=256,
        motion_engine="reenact",
        background=BackgroundOptions(background="#00ff00"),
    )
    avatar = backend.prepare_motion(data_dir / PORTRAIT)
    camera = read_video(data_dir / "video" / "expressions_silent.mp4", end=0.12).frames
    frames = backend.open_camera(
        avatar, (182, 256), iter([(f, i / 25) for i, f in enumerate(camera)])
    )
    for frame in frames:
        assert frame.shape == (256, 182, 3) and (_corners(frame) == GREEN).all()


def test_create_app_hands_the_background_to_the_backend(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import avatarlab.serve.backend as backend_module
    from avatarlab.serve import create_app

    seen: dict[str, Any] = {}

    class Spy(EngineBackend):
        def __init__(self, *args: Any, **kw: Any) -> None:
            seen.update(kw)
            super().__init__(*args, **kw)

    monkeypatch.setattr(backend_module, "EngineBackend", Spy)
    options = ServeOptions(avatars=(data_dir / PORTRAIT,), background="blur", camera=False)
    create_app(options)
    assert seen["background"].background == "blur"


def test_bad_background_is_refused_before_the_server_starts(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="sky.png"):
        ServeOptions(background=str(tmp_path / "sky.png"))
