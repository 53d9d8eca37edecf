"""Wav2LipDataset on a synthetic prepared folder whose frames encode their own index."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avatarlab.datasets.torch import Wav2LipDataset, mel_start  # noqa: E402
from avatarlab.media import melspectrogram, read_audio, write_audio  # noqa: E402


def make_segment(folder: Path, n_frames: int, seed: int) -> None:
    folder.mkdir(parents=True)
    for k in range(n_frames):
        # a flat grey image whose level is the frame index: survives JPEG exactly enough
        cv2.imwrite(str(folder / f"{k}.jpg"), np.full((32, 32, 3), 10 + 2 * k, dtype=np.uint8))
    rng = np.random.default_rng(seed)
    write_audio(
        folder / "audio.wav", (0.1 * rng.standard_normal(n_frames * 640)).astype(np.float32), 16000
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    make_segment(root / "spk1" / "utt" / "00", 40, 1)
    make_segment(root / "spk2" / "utt" / "03", 30, 2)
    make_segment(root / "spk3" / "utt" / "00", 12, 3)  # too short: <= 3 * window frames
    (root / "filelists").mkdir()
    (root / "filelists" / "train.txt").write_text("spk1/utt/00\nspk2/utt/03\nspk3/utt/00\n")
    return root


def test_mel_start_matches_wav2lip() -> None:
    # Wav2Lip: start_idx = int(80. * (start_frame_num / float(hparams.fps)))
    assert [mel_start(k) for k in (0, 1, 2, 3, 7, 24, 25)] == [0, 3, 6, 9, 22, 76, 80]


def test_items_pair_frames_and_mel_windows(prepared: Path) -> None:
    data = Wav2LipDataset(prepared, "train", img_size=None, seed=7)
    assert [n for _, n in data.segments] == [40, 30]  # the short segment is left out
    assert len(data) == (40 - 4) + (30 - 4)
    mels = [melspectrogram(read_audio(f / "audio.wav")) for f, _ in data.segments]
    for i in range(12):
        segment, start, mel_frame, label = data.sample(i)
        frames, mel, y = data[i]
        levels = frames[:, 0, 16, 16].numpy() * 255
        assert np.allclose(levels, 10 + 2 * np.arange(start, start + 5), atol=1.5)
        m0 = mel_start(mel_frame)
        assert np.allclose(mel[0].numpy(), mels[segment][:, m0 : m0 + 16])
        assert float(y[0]) == label
        assert (start == mel_frame) == (label == 1)


def test_sampling_is_seeded_balanced_and_offsync_is_elsewhere(prepared: Path) -> None:
    a = Wav2LipDataset(prepared, "train", seed=1, length=400)
    b = Wav2LipDataset(prepared, "train", seed=1, length=400)
    c = Wav2LipDataset(prepared, "train", seed=2, length=400)
    draws = [a.sample(i) for i in range(400)]
    assert draws == [b.sample(i) for i in range(400)]
    assert draws != [c.sample(i) for i in range(400)]
    labels = np.array([d[3] for d in draws])
    assert 0.4 < labels.mean() < 0.6
    far = Wav2LipDataset(prepared, "train", seed=1, length=400, min_offset=5)
    for _, start, mel_frame, label in (far.sample(i) for i in range(400)):
        assert label == 1 or abs(start - mel_frame) >= 5
    assert torch.equal(a[5][0], b[5][0]) and torch.equal(a[5][1], b[5][1])


def test_channel_order_and_resize(prepared: Path) -> None:
    rgb = Wav2LipDataset(prepared, "train", img_size=16, seed=0)[0][0]
    bgr = Wav2LipDataset(prepared, "train", img_size=16, seed=0, channel_order="bgr")[0][0]
    assert rgb.shape == (5, 3, 16, 16)
    assert torch.allclose(rgb, bgr.flip(1))


def test_missing_split_is_a_clear_error(prepared: Path, tmp_path: Path) -> None:
    from avatarlab.errors import MediaError, OptionError

    with pytest.raises(MediaError, match="no usable segments"):
        Wav2LipDataset(prepared, "train", segments=[prepared / "spk3" / "utt" / "00"])
    with pytest.raises(MediaError, match="avatarlab prepare"):
        Wav2LipDataset(tmp_path, "val")
    with pytest.raises(OptionError):
        Wav2LipDataset(prepared, "dev")


def test_mp4_layout_is_refused_with_the_preset_named(tmp_path: Path) -> None:
    import json

    from avatarlab.errors import MediaError

    (tmp_path / "spk" / "utt" / "00").mkdir(parents=True)
    (tmp_path / "spk" / "utt" / "00" / "video.mp4").write_bytes(b"")
    (tmp_path / "filelists").mkdir()
    (tmp_path / "filelists" / "train.txt").write_text("spk/utt/00\n")
    with pytest.raises(MediaError, match="an mp4 preset|hdtf or syncnet"):
        Wav2LipDataset(tmp_path, "train")
    (tmp_path / "prepare-options.json").write_text(json.dumps({"preset": "hdtf"}))
    with pytest.raises(MediaError) as err:
        Wav2LipDataset(tmp_path, "train")
    assert "was prepared with --preset hdtf: training needs --preset wav2lip" in str(err.value)
