"""Decoded shared clips for the face tests, read once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarlab.media import Video, read_video

_CACHE: dict[str, Video] = {}


@pytest.fixture(scope="session")
def clip(data_dir: Path):  # type: ignore[no-untyped-def]
    """``clip(name) -> Video`` for a file in ``shared/data/video``, decoded once."""

    def load(name: str) -> Video:
        if name not in _CACHE:
            _CACHE[name] = read_video(data_dir / "video" / name)
        return _CACHE[name]

    return load
