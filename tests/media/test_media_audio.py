"""Audio decoding, resampling (soxr HQ, librosa-compatible length) and WAV writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.media import (
    SPEECH_RATE,
    read_audio,
    read_audio_with_rate,
    resample,
    write_audio,
)

from ._media_helpers import tone


def test_44k_stereo_to_16k_mono_length(data_dir: Path) -> None:
    path = data_dir / "video" / "talk_a.mp4"  # AAC 44.1 kHz stereo
    native, rate = read_audio_with_rate(path, mono=False)
    assert rate == 44100 and native.ndim == 2 and native.shape[0] == 2
    # AAC decodes to whole 1024-sample frames; the padding after the last real sample
    # is dropped, so the length equals the stream duration ffprobe reports (6.107007 s).
    assert native.shape[1] == pytest.approx(6.107007 * 44100, abs=1024)
    mono16 = read_audio(path)
    assert mono16.dtype == np.float32 and mono16.ndim == 1
    assert mono16.shape[0] == int(np.ceil(native.shape[1] * SPEECH_RATE / 44100))
    assert np.abs(mono16).max() <= 1.0


def test_resample_matches_librosa(data_dir: Path) -> None:
    librosa = pytest.importorskip("librosa")
    stereo, rate = read_audio_with_rate(data_dir / "audio" / "chinese_news_8s.wav", mono=False)
    assert rate == 48000 and stereo.shape == (2, 384000)
    ours = resample(stereo.mean(axis=0), rate, 16000)
    ref = librosa.resample(stereo.mean(axis=0), orig_sr=rate, target_sr=16000, res_type="soxr_hq")
    assert ours.shape == ref.shape == (128000,) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    both = resample(stereo, rate, 22050)
    assert both.shape == (2, int(np.ceil(384000 * 22050 / 48000)))


def test_resample_preserves_a_tone() -> None:
    x = tone(1.0, 44100, freq=440.0)
    y = resample(x, 44100, 16000)
    assert y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 440  # 1 s at 16 kHz: bin k is k Hz
    assert np.sqrt(np.mean(y**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)


def test_wav_round_trip(tmp_path: Path) -> None:
    stereo = tone(0.5, 22050, channels=2)
    out = tmp_path / "sub" / "t.wav"
    write_audio(out, stereo, 22050)
    back, rate = read_audio_with_rate(out, mono=False)
    assert rate == 22050 and back.shape == stereo.shape
    np.testing.assert_allclose(back, stereo, atol=1.0 / 32767)
    assert [p.name for p in out.parent.iterdir()] == ["t.wav"]  # no temp file left
