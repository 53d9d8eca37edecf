"""Folder expansion and image writing (avatarlab.media.files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.errors import MediaError, OptionError
from avatarlab.media import read_image
from avatarlab.media.files import find_media, write_image

from ._media_helpers import pattern_frame


def test_write_image_round_trip(tmp_path: Path) -> None:
    img = pattern_frame(7, 40, 30)
    write_image(tmp_path / "deep" / "a.png", img)
    np.testing.assert_array_equal(
        read_image(tmp_path / "deep" / "a.png"), img
    )  # lossless, RGB order
    write_image(tmp_path / "b.jpg", img)
    assert np.abs(read_image(tmp_path / "b.jpg").astype(int) - img).mean() < 2
    with pytest.raises(OptionError):
        write_image(tmp_path / "c.unknown", img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jpg", "deep"]


def test_find_media(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.mp4", "sub/b.JPG", "notes.txt", "sub/c.png"):
        (tmp_path / name).write_bytes(b"x")
    found = find_media([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.mp4",
        "sub/b.JPG",
        "sub/c.png",
    ]
    assert find_media([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
    with pytest.raises(MediaError, match="not found"):
        find_media([tmp_path / "missing"])
