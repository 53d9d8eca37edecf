"""Decoding: frame counts and timestamps against ffprobe, probe facts, rotation, VFR, images."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatarlab.media import iter_frames, probe, read_image, read_video

from ._media_helpers import ffprobe_frame_times, make_clip

CLIPS = {
    # name: (width, height, fps, has_audio)
    "hdtf_aoc_8s.mp4": (512, 512, 25.0, True),
    "talk_a.mp4": (700, 700, 22.13, True),
    "talk_b.mp4": (844, 844, 25.0, True),
    "talk_c.mp4": (590, 590, 25.0, True),
    "expressions_silent.mp4": (512, 512, 25.0, False),
}


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_shared_clips_match_ffprobe(data_dir: Path, name: str) -> None:
    path = data_dir / "video" / name
    width, height, fps, has_audio = CLIPS[name]
    expected = ffprobe_frame_times(path)
    n = 0
    times = []
    for frame, t in iter_frames(path):
        if n == 0:
            assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
            assert frame.flags["C_CONTIGUOUS"]
        times.append(t)
        n += 1
    assert n == len(expected)
    np.testing.assert_allclose(times, expected, atol=2e-6)
    info = probe(path)
    assert (info.width, info.height, info.n_frames) == (width, height, len(expected))
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.has_video and info.has_audio == has_audio and not info.is_image
    assert info.rotation == 0


def test_start_end_window(data_dir: Path) -> None:
    path = data_dir / "video" / "talk_b.mp4"
    full = [t for _, t in iter_frames(path)]
    part = [(f, t) for f, t in iter_frames(path, start=2.0, end=3.0)]
    assert [t for _, t in part] == [t for t in full if 2.0 <= t < 3.0]
    # Seeking yields the same pixels as decoding from the start.
    first_in_window = next(f for f, t in iter_frames(path) if t >= 2.0)
    np.testing.assert_array_equal(part[0][0], first_in_window)


def test_read_video_short_clip(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", size=(64, 48))
    video = read_video(clip)
    assert video.frames.shape == (10, 48, 64, 3) and video.frames.dtype == np.uint8
    np.testing.assert_allclose(video.timestamps, np.arange(10) / 25, atol=1e-9)
    assert video.fps == pytest.approx(25.0)
    # pattern_frame(i) has red channel 20 + 4i
    np.testing.assert_allclose(
        video.frames[:, :, :, 0].mean(axis=(1, 2)), 20 + 4 * np.arange(10), atol=3
    )


def test_variable_frame_rate_kept(tmp_path: Path) -> None:
    times = [0.0, 0.04, 0.1, 0.13, 0.25, 0.26, 0.5, 0.9, 0.95, 1.2]
    clip = make_clip(tmp_path / "vfr.mp4", times=times)
    got = [t for _, t in iter_frames(clip)]
    np.testing.assert_allclose(got, times, atol=1e-9)
    np.testing.assert_allclose(got, ffprobe_frame_times(clip), atol=2e-6)
    assert probe(clip).n_frames == len(times)


@pytest.mark.parametrize(
    ("ccw", "cw", "shape", "red_at"),
    [
        (90, 270, (64, 32), (63, 0)),  # stored 64x32 landscape; marker ends bottom-left
        (-90, 90, (64, 32), (0, 31)),  # rotated clockwise: marker at top-right
        (180, 180, (32, 64), (31, 63)),
    ],
)
def test_rotation_metadata_applied(
    tmp_path: Path, ccw: int, cw: int, shape: tuple[int, int], red_at: tuple[int, int]
) -> None:
    clip = make_clip(tmp_path / "rot.mp4", size=(64, 32), rotation_ccw=ccw, marker=True)
    info = probe(clip)
    assert info.rotation == cw
    assert (info.height, info.width) == shape
    frame, _ = next(iter_frames(clip))
    assert frame.shape[:2] == shape
    red = np.argwhere(frame[:, :, 0] > 200)
    corner = np.array(red_at)
    assert np.abs(red.mean(axis=0) - corner).max() < 6  # 8x8 marker sits in that corner


def test_image_orientation_and_modes(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:5, :5] = (255, 0, 0)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (30, 20, 3) and out.dtype == np.uint8
    red = np.argwhere(out[:, :, 0] > 200).mean(axis=0)
    assert red[0] < 6 and red[1] > 14  # top-left moved to top-right

    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "g.png")
    gray = read_image(tmp_path / "g.png")
    assert gray.shape == (20, 30, 3) and (gray[..., 0] == gray[..., 2]).all()

    rgba = np.dstack([rgb, np.full((20, 30), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)

    info = probe(tmp_path / "o.jpg")
    assert info.is_image and info.n_frames == 1 and (info.width, info.height) == (20, 30)
    frames = list(iter_frames(tmp_path / "a.png"))
    assert len(frames) == 1 and frames[0][1] == 0.0


def test_shared_images(data_dir: Path) -> None:
    for path in sorted((data_dir / "image").iterdir()):
        img = read_image(path)
        with Image.open(path) as ref:
            w, h = ref.size
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
        assert {img.shape[0], img.shape[1]} == {w, h}


def test_stream_copy_cut_counts_only_shown_frames(tmp_path: Path, data_dir: Path) -> None:
    # A stream-copy cut keeps the GOP before the cut point behind an edit list: MP4's
    # nb_frames counts those hidden frames, players (and we) do not.
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    cut = tmp_path / "cut.mp4"
    src = data_dir / "video" / "talk_b.mp4"
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-ss",
            "1.1",
            "-i",
            str(src),
            "-c",
            "copy",
            "-t",
            "2",
            str(cut),
        ],
        check=True,
    )
    expected = ffprobe_frame_times(cut)
    times = [t for _, t in iter_frames(cut)]
    np.testing.assert_allclose(times, expected, atol=2e-6)
    assert probe(cut).n_frames == len(expected)
