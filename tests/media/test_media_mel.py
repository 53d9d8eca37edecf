"""Wav2Lip mel conformance with the reference fixture, and the per-frame window indexing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.errors import MediaError
from avatarlab.media import mel_chunk_starts, mel_windows, melspectrogram, read_audio


@pytest.fixture(scope="module")
def ref(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "wav2lip_audio.npz") as data:
        return {k: data[k] for k in data.files}


def test_mel_matches_wav2lip_given_its_wav(ref: dict[str, np.ndarray]) -> None:
    mel = melspectrogram(ref["wav"])
    assert mel.shape == ref["mel"].shape == (80, 641) and mel.dtype == np.float32
    assert np.abs(mel - ref["mel"]).max() <= 1e-3


def test_mel_matches_wav2lip_from_our_loader(ref: dict[str, np.ndarray], data_dir: Path) -> None:
    wav = read_audio(data_dir / "audio" / "english_radio_8s.wav", sample_rate=16000)
    assert wav.shape == ref["wav"].shape
    assert np.abs(melspectrogram(wav) - ref["mel"]).max() <= 2e-2


def test_chunk_starts_exact(ref: dict[str, np.ndarray]) -> None:
    starts = mel_chunk_starts(ref["mel"].shape[1], float(ref["fps"]))
    np.testing.assert_array_equal(starts, ref["chunk_starts"])
    windows = mel_windows(ref["mel"], float(ref["fps"]))
    assert windows.shape == (len(starts), 80, 16)
    np.testing.assert_array_equal(windows[5], ref["mel"][:, starts[5] : starts[5] + 16])
    np.testing.assert_array_equal(windows[-1], ref["mel"][:, -16:])


def test_chunk_starts_fixed_frame_count_and_fractional_fps() -> None:
    starts = mel_chunk_starts(100, 22.13, n_frames=40)
    expected = np.minimum([int(i * (80.0 / 22.13)) for i in range(40)], 84)
    np.testing.assert_array_equal(starts, expected)
    with pytest.raises(MediaError):
        mel_chunk_starts(10, 25.0)


def test_mel_of_silence_is_floor() -> None:
    mel = melspectrogram(np.zeros(1600, np.float32))
    assert mel.shape == (80, 9)
    np.testing.assert_allclose(mel, -4.0)
