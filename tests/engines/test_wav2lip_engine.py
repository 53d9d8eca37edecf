"""The Wav2Lip engine: crops, mel windows and paste-back, and a dub end to end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avatarlab.engines.base import Driver
from avatarlab.engines.wav2lip.audio import MelWindowStream, frame_count
from avatarlab.engines.wav2lip.engine import (
    Wav2LipAvatar,
    Wav2LipEngine,
    Wav2LipOptions,
    blend_mask,
    crop_boxes,
)
from avatarlab.errors import NoFaceError, OptionError
from avatarlab.media import mel_chunk_starts, mel_windows, melspectrogram

RATE = 16000
CPU = Wav2LipOptions(device="cpu")


class EchoNet(torch.nn.Module):
    """Stands in for Wav2Lip: returns the unmasked reference face and records its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        self.calls.append((audio.clone(), faces.clone()))
        return faces[:, 3:]


def _portrait() -> np.ndarray:
    """A smooth, colourful 160x200 (W x H) RGB frame; channels differ so order matters."""
    y, x = np.mgrid[0:200, 0:160].astype(np.float32)
    rgb = np.stack([40 + x, 30 + 0.8 * y, 200 - 0.5 * (x + y) / 2], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(0)
    return (
        0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
        + 0.02 * rng.standard_normal(t.size)
    ).astype(np.float32)


def test_crop_boxes_pads_clips_and_fills_gaps():
    nan = [np.nan] * 4
    boxes = np.array([[10, 20, 50, 60], nan, [12, 22, 52, 62], nan, [50, 85, 70, 95]], float)
    out = crop_boxes(boxes, (60, 100), (0, 10, 0, 0))
    expected = [
        [10, 20, 50, 70],
        [10, 20, 50, 70],
        [12, 22, 52, 72],
        [12, 22, 52, 72],
        [50, 85, 60, 100],
    ]
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(NoFaceError):
        crop_boxes(np.full((3, 4), np.nan), (60, 100), (0, 10, 0, 0))
    long_gap = np.array([[10, 20, 50, 60], nan, nan, nan, [12, 22, 52, 62]], float)
    out = crop_boxes(long_gap, (60, 100), (0, 10, 0, 0), max_gap=1)
    np.testing.assert_array_equal(
        out[[1, 2, 3]], [[10, 20, 50, 70], [0, 0, 0, 0], [12, 22, 52, 72]]
    )


def test_blend_mask_hides_the_box_edges():
    mask = blend_mask(100, 80, "lower", 0.1)[:, :, 0]
    assert mask.shape == (100, 80) and mask.min() >= 0 and mask.max() <= 1
    assert np.all(mask[:35] == 0)  # eyes and above come from the source
    assert mask[80, 40] > 0.99  # mouth and chin come from the network
    assert mask[:, 0].max() < 0.05 and mask[:, -1].max() < 0.05 and mask[-1].max() < 0.05
    np.testing.assert_allclose(mask, mask[:, ::-1], atol=1e-6)
    box = blend_mask(100, 80, "box", 0.1)[:, :, 0]
    assert box[50, 40] > 0.99 and box[0].max() < 0.05
    assert np.all(blend_mask(10, 10, "box", 0.0) == 1)


def test_render_feeds_reference_inputs_and_pastes_back():
    frame = _portrait()
    box = np.array([40, 30, 140, 150])  # x0, y0, x1, y1
    avatar = Wav2LipAvatar(Path("portrait.png"), 25.0, box[None], still=frame)
    net = EchoNet()
    engine = Wav2LipEngine(Wav2LipOptions(batch_size=8, device="cpu"), model=net)
    wav = _speech(1.0)
    frames = list(engine.render(avatar, wav, RATE))

    mel = melspectrogram(wav)
    assert len(frames) == 25  # 1 s at 25 fps
    assert [faces.shape[0] for _, faces in net.calls] == [8, 8, 8, 1]
    audio = torch.cat([a for a, _ in net.calls]).numpy()
    starts = mel_chunk_starts(mel.shape[1], 25.0)  # the reference's windows, then clamped
    assert len(starts) == 22 and starts[20] == 64
    np.testing.assert_array_equal(audio[:22, 0], mel_windows(mel, 25.0)[:22])
    np.testing.assert_array_equal(audio[21:, 0], np.broadcast_to(mel[:, -16:], (4, 80, 16)))

    faces = torch.cat([f for _, f in net.calls]).numpy()
    crop = cv2.resize(frame[30:150, 40:140], (96, 96), interpolation=cv2.INTER_LINEAR)
    bgr = crop[..., ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(faces[:, 3:], np.broadcast_to(bgr, faces[:, 3:].shape), atol=1e-6)
    assert np.all(faces[:, :3, 48:] == 0)  # lower half of the target copy is masked
    np.testing.assert_array_equal(faces[:, :3, :48], faces[:, 3:, :48])

    out = frames[5]
    assert out.shape == frame.shape and out.dtype == np.uint8
    outside = np.ones(frame.shape[:2], bool)
    outside[30:150, 40:140] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    np.testing.assert_array_equal(out[30:72], frame[30:72])  # top 35 % of the box kept
    diff = np.abs(out[30:150, 40:140].astype(int) - frame[30:150, 40:140]).mean(axis=(0, 1))
    assert np.all(diff < 1.5), diff  # echoed face lands where it came from, colours in order


@pytest.mark.parametrize("fps", [25.0, 22.13])
def test_mel_stream_equals_whole_audio_windows(fps):
    wav = _speech(2.3)
    whole = mel_windows(melspectrogram(wav), fps, frame_count(len(wav), fps))
    stream = MelWindowStream(fps)
    parts = [stream.push(wav[i : i + 1234]) for i in range(0, len(wav), 1234)]
    # Frame 0 needs columns 0-15, i.e. samples up to 15 * 200 + 400 = 3400 (0.2125 s).
    assert [len(p) for p in parts[:3]] == [0, 0, 1]
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_frame_to_mel_indexing_is_the_reference(fixtures_dir):
    ref = np.load(fixtures_dir / "wav2lip_audio.npz")
    n_cols, fps, starts = ref["mel"].shape[1], float(ref["fps"]), ref["chunk_starts"]
    n = frame_count(len(ref["wav"]), fps)  # 8 s at 25 fps: 200 frames, the reference cuts 197
    ours = mel_chunk_starts(n_cols, fps, n)
    np.testing.assert_array_equal(ours[: len(starts)], starts)
    assert n == 200 and np.all(ours[len(starts) :] == n_cols - 16)


def test_stream_and_driver_give_the_frames_of_render():
    frame = _portrait()
    avatar = Wav2LipAvatar(Path("portrait.png"), 25.0, np.array([[40, 30, 140, 150]]), frame)
    wav = _speech(1.0)
    whole_net, stream_net = EchoNet(), EchoNet()
    whole = list(
        Wav2LipEngine(CPU, model=whole_net).render(avatar, Driver(audio=wav, sample_rate=RATE))
    )
    chunks = [wav[i : i + 1600] for i in range(0, len(wav), 1600)]  # 0.1 s chunks
    lists = list(Wav2LipEngine(CPU, model=stream_net).render_stream(avatar, chunks, RATE))
    assert len(lists) == len(chunks) + 1 and lists[0] == [] and len(lists[3]) > 0
    streamed = [f for frames in lists for f in frames]
    assert len(streamed) == len(whole) == 25
    np.testing.assert_array_equal(np.stack(streamed), np.stack(whole))
    audio = [torch.cat([a for a, _ in net.calls]) for net in (whole_net, stream_net)]
    torch.testing.assert_close(audio[0], audio[1], rtol=0, atol=0)


def test_device_and_options_are_checked():
    with pytest.raises(OptionError):
        Wav2LipOptions(pads=(0, 10, 0))
    with pytest.raises(OptionError):
        Wav2LipOptions(blend="circle")  # type: ignore[arg-type]
    with pytest.raises(OptionError):
        Wav2LipOptions(batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="CUDA"):
            Wav2LipEngine(Wav2LipOptions(device="cuda"), model=EchoNet())


def test_still_portrait_repeats_its_one_frame(data_dir):
    portrait = data_dir / "image" / "woman_photo.jpg"
    engine = Wav2LipEngine(Wav2LipOptions(batch_size=32, device="cpu"), model=EchoNet())
    avatar = engine.prepare(portrait)
    assert avatar.still is not None and avatar.n_frames == 1 and avatar.fps == 25.0
    x0, y0, x1, y1 = avatar.boxes[0]
    h, w = avatar.still.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and (x1 - x0) * (y1 - y0) > 0.01 * w * h
    frames = list(engine.render(avatar, _speech(0.5), RATE))
    assert len(frames) == 13  # ceil(0.5 s * 25 fps)
    assert all(np.abs(f.astype(int) - avatar.still).mean() < 0.5 for f in frames)


@pytest.fixture(scope="module")
def short_clip(data_dir, tmp_path_factory):
    """The first 2 s of talk_c.mp4 (590x590, 25 fps) with its own audio at 16 kHz."""
    from avatarlab.media import read_audio, read_video, write_video

    clip = read_video(data_dir / "video" / "talk_c.mp4", end=2.0)
    wav = read_audio(data_dir / "video" / "talk_c.mp4", RATE)[: 2 * RATE]
    path = tmp_path_factory.mktemp("clip") / "talk_c_2s.mp4"
    write_video(path, clip.frames, clip.fps, audio=wav, sample_rate=RATE, crf=12)
    return path


@pytest.mark.slow
def test_dub_end_to_end_with_fill_rule_weights(short_clip, tmp_path):
    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.engines.wav2lip import Wav2Lip, wav2lip_dub
    from avatarlab.face.track import track_video
    from avatarlab.media import probe, read_audio, read_video

    out = wav2lip_dub(
        short_clip, short_clip, tmp_path / "out.mp4", CPU, model=fill_state_dict(Wav2Lip())
    )
    info = probe(out)
    assert (info.width, info.height, info.fps, info.n_frames) == (590, 590, 25.0, 50)
    assert info.has_audio
    dubbed = read_audio(out, RATE)
    assert abs(len(dubbed) - 2 * RATE) <= RATE // 25  # within one frame
    assert not list(tmp_path.glob(".out*"))  # no temporary left behind

    src, res = read_video(short_clip).frames, read_video(out).frames
    boxes = track_video(short_clip).boxes
    x0, y0, x1, y1 = np.nanmedian(boxes, axis=0).astype(int)
    # Above the face the source is untouched (up to re-encoding noise) ...
    assert np.abs(res[:, : y0 - 5].astype(int) - src[:, : y0 - 5]).mean() < 2.0
    # ... and the mouth region shows the fill-rule network's flat grey (0.5068 * 255).
    mouth = res[:, int(y0 + 0.75 * (y1 - y0)), (x0 + x1) // 2]
    assert np.abs(mouth.astype(int) - 129).max() <= 8, mouth[:3]
