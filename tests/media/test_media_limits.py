"""Small hostile files: long audio and huge pictures are refused before they fill memory."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from avatarlab.errors import MediaError
from avatarlab.media import (
    MAX_IMAGE_PIXELS,
    MediaLimitError,
    iter_frames,
    probe,
    read_audio,
    read_image,
)

from ._media_helpers import huge_png, long_opus


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def test_hour_of_opus_is_refused_from_its_header(tmp_path: Path) -> None:
    path = long_opus(tmp_path / "hour.ogg", 3600)  # 2.9 MB; 690 MB once decoded
    start, before = time.perf_counter(), _rss_mb()
    with pytest.raises(MediaLimitError, match=r"is 3600\.0 s long; at most 120 s"):
        read_audio(path, sample_rate=48_000, max_seconds=120)
    assert time.perf_counter() - start < 0.5  # nothing decoded
    assert _rss_mb() - before < 30


def test_audio_without_a_stated_duration_stops_decoding_at_the_limit(tmp_path: Path) -> None:
    path = long_opus(tmp_path / "live.webm", 1200, fmt="webm", stated=False)
    with av.open(str(path)) as c:  # the case under test: no duration in the header
        assert c.duration is None and c.streams.audio[0].duration is None
    before = _rss_mb()
    with pytest.raises(MediaLimitError, match="longer than 60 s"):
        read_audio(path, sample_rate=48_000, max_seconds=60)
    # 20 minutes would be 230 MB at 48 kHz float32; decoding stopped after 61 s (12 MB).
    assert _rss_mb() - before < 60


def test_audio_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    path = long_opus(tmp_path / "short.ogg", 5)
    audio = read_audio(path, sample_rate=48_000, max_seconds=5)
    assert abs(len(audio) - 5 * 48_000) <= 960  # one Opus frame of padding at most
    assert float(np.abs(audio).max()) > 0.05
    with pytest.raises(MediaLimitError, match="at most 3 s"):
        read_audio(path, max_seconds=3)
    assert len(read_audio(path, sample_rate=48_000)) == len(audio)  # no limit by default


@pytest.mark.parametrize(
    ("size", "shown"), [(16_000, "256 megapixels"), (12_000, "12000x12000 (144 megapixels)")]
)
def test_huge_png_is_refused_before_decoding(tmp_path: Path, size: int, shown: str) -> None:
    start = time.perf_counter()
    path = huge_png(tmp_path / "huge.png", size, size)  # ~30 KB on disk
    assert path.stat().st_size < 200_000 and time.perf_counter() - start < 2
    before = _rss_mb()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for reader in (read_image, probe, lambda p: next(iter_frames(p))):
            with pytest.raises(MediaLimitError) as err:
                reader(path)
            message = str(err.value)
            assert shown in message and "at most 50 megapixels" in message
            assert "\n" not in message and "DecompressionBomb" not in message
    assert not caught  # Pillow's DecompressionBombWarning stays off the console
    assert _rss_mb() - before < 30  # 16000x16000 RGB would be 768 MB


def test_pixel_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_IMAGE_PIXELS == 50_000_000
    monkeypatch.setattr("avatarlab.media._open.MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (10, 10), (1, 2, 3)).save(tmp_path / "ok.png")
    Image.new("RGB", (11, 10)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "ok.png")[0, 0].tolist() == [1, 2, 3]
    assert probe(tmp_path / "ok.png").width == 10
    with pytest.raises(MediaLimitError, match="11x10"):
        read_image(tmp_path / "big.png")


def test_pillow_warnings_stay_off_the_console(tmp_path: Path) -> None:
    # A palette PNG with per-entry alpha: Pillow warns when it is converted to RGB.
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] * 128)
    img.save(tmp_path / "palette.png", transparency=bytes([0, 128]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = read_image(tmp_path / "palette.png")
    assert not caught
    assert rgb.shape == (4, 4, 3) and rgb[0, 0].tolist() == [255, 0, 0]


def test_ffmpeg_errors_read_as_words(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all " * 100)
    for reader in (probe, read_audio, lambda p: next(iter_frames(p))):
        with pytest.raises(MediaError) as err:
            reader(junk)
        message = str(err.value)
        assert "Errno" not in message and "1094995529" not in message
        assert message.startswith(f"cannot open {junk}: invalid data found")
        assert message.count(str(junk)) == 1
