"""Body-test helpers: shared images, short clips cut from the shared videos, synthetic clips."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from avatarlab.media import read_image, read_video


def encode(path: Path, frames: list[np.ndarray], fps: int = 25, rotation_ccw: int = 0) -> Path:
    """Write RGB frames as an H.264 MP4 (optionally with display-rotation metadata)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "12"}
        if rotation_ccw:
            stream.set_display_rotation(rotation_ccw)
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def image(data_dir: Path):  # type: ignore[no-untyped-def]
    """``image(name) -> RGB array`` of ``shared/data/image/<name>``."""
    return lambda name: read_image(data_dir / "image" / name)


@pytest.fixture(scope="session")
def short_clip(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``short_clip(name, frames) -> Path`` of the first frames of a shared video, re-encoded."""
    cache: dict[tuple[str, int], Path] = {}

    def make(name: str, frames: int) -> Path:
        key = (name, frames)
        if key not in cache:
            video = read_video(data_dir / "video" / name, end=(frames + 0.5) / 25.0)
            out = tmp_path_factory.mktemp("clips") / name
            cache[key] = encode(out, list(video.frames[:frames]), fps=round(video.fps))
        return cache[key]

    return make
