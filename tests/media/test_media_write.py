"""Writing: round trips (fractional fps, odd sizes), A/V sync, streamed audio, muxing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.media import (
    VideoWriter,
    iter_frames,
    mux_audio,
    probe,
    read_audio,
    read_audio_with_rate,
    read_video,
    write_video,
)

from ._media_helpers import ffprobe_frame_times, pattern_frame, tone


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("fps", "size"), [(22.13, (333, 251)), (25.0, (64, 48)), (30000 / 1001, (90, 60))]
)
def test_round_trip_keeps_count_size_and_sync(
    tmp_path: Path, fps: float, size: tuple[int, int]
) -> None:
    w, h = size
    n, rate = 40, 16000
    audio = tone(n / fps, rate)
    onset = int(0.4 * rate)  # silence, then the tone from 0.4 s: marks where sync lands
    audio[:onset] = 0.0
    frames = [pattern_frame(i, w, h) for i in range(n)]
    out = tmp_path / "rt.mp4"
    assert write_video(out, frames, fps, audio=audio, sample_rate=rate) == n
    assert _only(tmp_path) == ["rt.mp4"]

    info = probe(out)
    # Odd sides are padded up to even by repeating the last row/column.
    assert (info.width, info.height) == (w + w % 2, h + h % 2)
    assert info.n_frames == n and info.fps == pytest.approx(fps, rel=1e-4)
    video = read_video(out)
    assert video.frames.shape == (n, h + h % 2, w + w % 2, 3)
    np.testing.assert_allclose(video.timestamps, np.arange(n) / fps, atol=1e-4)
    np.testing.assert_allclose(video.timestamps, ffprobe_frame_times(out), atol=2e-6)
    # Content survives (crf 18) and the padding repeats the edge.
    err = np.abs(video.frames[:, :h, :w].astype(int) - np.stack(frames).astype(int)).mean()
    assert err < 3.0
    if w % 2:
        np.testing.assert_allclose(
            video.frames[:, :h, w].astype(int), video.frames[:, :h, w - 1], atol=6
        )

    back, back_rate = read_audio_with_rate(out)
    assert back_rate == rate
    assert abs(back.shape[0] / rate - n / fps) < 1 / fps  # A/V durations within one frame
    assert back.shape[0] == audio.shape[0]
    heard = int(np.argmax(np.abs(back) > 0.05))
    assert abs(heard - onset) <= 16  # within 1 ms: the AAC priming delay is compensated


def test_streamed_audio_and_frames(tmp_path: Path) -> None:
    rate, fps, n = 16000, 25, 50
    audio = tone(n / fps, rate, channels=2)
    per_frame = rate // fps
    out = tmp_path / "s.mp4"
    with VideoWriter(out, fps, sample_rate=rate) as writer:
        writer.write_audio(audio[:, :per_frame])  # before the first frame: fixes stereo
        for i in range(n):
            writer.write(pattern_frame(i, 32, 32))
            if i + 1 < n:
                writer.write_audio(audio[:, (i + 1) * per_frame : (i + 2) * per_frame])
    info = probe(out)
    assert info.n_frames == n and info.channels == 2 and info.sample_rate == rate
    back = read_audio(out, sample_rate=None, mono=False)
    assert back.shape == audio.shape
    np.testing.assert_allclose(back[:, 1000:-1000], audio[:, 1000:-1000], atol=0.02)


def test_writer_memory_is_streaming(tmp_path: Path) -> None:
    import tracemalloc

    frame = pattern_frame(3, 256, 256)
    tracemalloc.start()
    with VideoWriter(tmp_path / "long.mp4", 25, preset="ultrafast") as writer:
        for _ in range(20):
            writer.write(frame)
        _, peak_short = tracemalloc.get_traced_memory()
        for _ in range(130):
            writer.write(frame)
        _, peak_long = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_long - peak_short < 2 * frame.nbytes
    assert probe(tmp_path / "long.mp4").n_frames == 150


def test_mux_audio_copies_video(tmp_path: Path, data_dir: Path) -> None:
    src = data_dir / "video" / "expressions_silent.mp4"
    audio = tone(3.0, 16000)
    out = tmp_path / "m.mp4"
    mux_audio(src, audio, 16000, out)
    assert _only(tmp_path) == ["m.mp4"]
    info = probe(out)
    assert info.has_audio and info.n_frames == 78 and info.video_codec == "h264"
    # stream copy: bit-identical frames
    a = next(iter_frames(src))[0]
    b = next(iter_frames(out))[0]
    np.testing.assert_array_equal(a, b)
    assert read_audio(out).shape == audio.shape
