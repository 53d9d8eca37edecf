"""Error cases raise avatarlab errors (never av.error) and leave no output behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from avatarlab.errors import MediaError, NoAudioError, NoVideoError
from avatarlab.media import (
    VideoWriter,
    iter_frames,
    mux_audio,
    probe,
    read_audio,
    read_image,
    write_audio,
    write_video,
)

from ._media_helpers import make_clip, pattern_frame, tone


def _read_all(path: Path) -> None:
    for _ in iter_frames(path):
        pass


def test_missing_file(tmp_path: Path) -> None:
    for fn in (probe, _read_all, read_audio, read_image):
        with pytest.raises(MediaError, match="not found"):
            fn(tmp_path / "nope.mp4")


def test_not_media(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    bad_png = tmp_path / "bad.png"
    bad_png.write_text("not a png")
    for path in (fake, empty):
        for fn in (probe, _read_all, read_audio):
            with pytest.raises(MediaError):
                fn(path)
    with pytest.raises(MediaError):
        read_image(bad_png)


def test_truncated_mp4(tmp_path: Path, data_dir: Path) -> None:
    # moov at the end (the shared clips): the index is gone.
    data = (data_dir / "video" / "talk_c.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for fn in (probe, _read_all, read_audio):
        with pytest.raises(MediaError):
            fn(cut)
    # moov first (our writer uses +faststart): the index points past the end.
    whole = tmp_path / "fs.mp4"
    write_video(whole, [pattern_frame(i, 64, 64) for i in range(30)], 25)
    blob = whole.read_bytes()
    assert blob[4:8] == b"ftyp" and b"moov" in blob[:200]
    short = tmp_path / "fs_cut.mp4"
    short.write_bytes(blob[: len(blob) * 6 // 10])
    with pytest.raises(MediaError, match="truncated"):
        probe(short)
    with pytest.raises(MediaError, match="truncated"):
        _read_all(short)


def test_audio_only_has_no_video(tmp_path: Path, data_dir: Path) -> None:
    wav = data_dir / "audio" / "english_radio_8s.wav"
    with pytest.raises(NoVideoError):
        _read_all(wav)
    info = probe(wav)
    assert info.has_audio and not info.has_video and info.n_frames == 0
    with pytest.raises(NoVideoError):
        mux_audio(wav, tone(1.0, 16000), 16000, tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == []


def test_silent_video_has_no_audio(data_dir: Path) -> None:
    with pytest.raises(NoAudioError):
        read_audio(data_dir / "video" / "expressions_silent.mp4")
    with pytest.raises(NoAudioError):
        read_audio(data_dir / "image" / "cartoon_boy.png")


def test_failed_writes_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError), VideoWriter(out, 25) as writer:
        writer.write(pattern_frame(0, 32, 32))
        raise RuntimeError("user code failed mid-way")
    with pytest.raises(MediaError, match="32x32"), VideoWriter(out, 25) as writer:
        writer.write(pattern_frame(0, 32, 32))
        writer.write(pattern_frame(1, 48, 32))
    with pytest.raises(MediaError, match="uint8"):
        write_video(out, [np.zeros((32, 32, 3), np.float32)], 25)
    with pytest.raises(MediaError, match="no frames"):
        write_video(out, [], 25)
    with pytest.raises(MediaError, match="fps"):
        write_video(out, [pattern_frame(0, 32, 32)], 0)
    with pytest.raises(MediaError, match="sample_rate"):
        write_video(out, [pattern_frame(0, 32, 32)], 25, audio=tone(1.0, 16000))
    with pytest.raises(MediaError):
        write_audio(tmp_path / "a.wav", np.zeros((0,), np.float32), 16000)
    with pytest.raises(MediaError):
        mux_audio(tmp_path / "missing.mp4", tone(1.0, 16000), 16000, out)
    assert list(tmp_path.iterdir()) == []


def test_no_av_error_leaks(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    blob = bytearray(clip.read_bytes())
    rng = np.random.default_rng(0)
    moov = blob.find(b"moov")
    for i in rng.integers(moov, len(blob), 40):  # scramble the index
        blob[i] = (blob[i] + 97) % 256
    corrupt.write_bytes(bytes(blob))
    try:
        probe(corrupt)
        _read_all(corrupt)
    except MediaError:
        pass
    shutil.rmtree(tmp_path)
