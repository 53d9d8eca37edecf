"""The NumPy port of librosa's onset strength and beat tracker against librosa itself."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from avatarlab.media import read_audio, resample
from avatarlab.metrics import _beats
from avatarlab.metrics.motion import BEAT_HOP, BEAT_START_BPM, BEAT_TIGHTNESS

# librosa in a child process with its own Numba cache (kept in the temp folder so that
# later runs skip the compilation): the venv's shared cache of librosa.beat can be stale
# (it crashed the calling process with a segmentation fault)
_LIBROSA = """
import sys, numpy as np, librosa
data = np.load(sys.argv[1])
hop, bpm, tightness = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
out = {}
for key in data.files:
    y = data[key]
    rate = int(key.split("_")[-1])
    env = librosa.onset.onset_strength(y=y, sr=rate, hop_length=hop)
    out[key + "_env"] = env
    out[key + "_tempo"] = librosa.feature.tempo(
        onset_envelope=env, sr=rate, hop_length=hop, start_bpm=bpm
    )
    out[key + "_beats"] = librosa.beat.beat_track(
        onset_envelope=env, sr=rate, hop_length=hop, start_bpm=bpm, tightness=tightness
    )[1]
np.savez(sys.argv[2], **out)
"""


@pytest.mark.slow  # librosa compiles its Numba kernels in the child (minutes on a cold cache)
@pytest.mark.timeout(900)
def test_onset_strength_tempo_and_beats_equal_librosa(data_dir: Path, tmp_path: Path) -> None:
    signals = {}
    for name in (
        "video/hdtf_aoc_8s.mp4",
        "audio/english_radio_8s.wav",
        "audio/singing_48k_stereo.wav",
    ):
        audio = read_audio(data_dir / name, 16000)
        for fps in (25, 30):
            rate = fps * BEAT_HOP
            signals[f"{Path(name).stem}_{rate}"] = resample(audio, 16000, rate)
    np.savez(tmp_path / "in.npz", **signals)
    cache = Path(tempfile.gettempdir()) / f"avatarlab-numba-{os.getuid()}"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    subprocess.run(
        [sys.executable, "-c", _LIBROSA, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")]
        + [str(BEAT_HOP), str(BEAT_START_BPM), str(BEAT_TIGHTNESS)],
        check=True,
        env=env,
        timeout=800,
    )
    ref = np.load(tmp_path / "out.npz")
    total = 0
    for key, y in signals.items():
        rate = int(key.split("_")[-1])
        onset = _beats.onset_strength(y, rate, BEAT_HOP)
        np.testing.assert_allclose(onset, ref[key + "_env"], rtol=1e-6, atol=1e-6)
        assert onset.dtype == ref[key + "_env"].dtype == np.float32
        assert _beats.tempo(onset, rate, BEAT_HOP, BEAT_START_BPM) == pytest.approx(
            float(ref[key + "_tempo"][0]), rel=1e-12
        )
        beats = _beats.beat_track(onset, rate, BEAT_HOP, BEAT_START_BPM, BEAT_TIGHTNESS)
        np.testing.assert_array_equal(beats, ref[key + "_beats"])
        total += len(beats)
    assert total > 60  # the clips do have beats (8 s each, ~120-170 BPM)


def test_mel_filters_are_slaney_triangles() -> None:
    weights = _beats.mel_filters(12800.0)
    assert weights.shape == (_beats.N_MELS, 1 + _beats.N_FFT // 2) and weights.dtype == np.float32
    # Slaney normalisation: each triangle's area (Hz) is 1
    hz_per_bin = 12800.0 / _beats.N_FFT
    np.testing.assert_allclose(weights.sum(1) * hz_per_bin, 1.0, rtol=0.05)
    assert (weights.max(1) > 0).all()


def test_beat_track_of_a_steady_pulse() -> None:
    rate, fps = 25 * BEAT_HOP, 25
    env = np.zeros(250, np.float32)
    env[5::12] = 1.0  # 125 BPM at 25 frames per second
    beats = _beats.beat_track(env, rate, BEAT_HOP, BEAT_START_BPM, BEAT_TIGHTNESS)
    assert _beats.tempo(env, rate, BEAT_HOP, BEAT_START_BPM) == pytest.approx(60 * fps / 12)
    assert set(np.diff(beats).tolist()) == {12} and beats[0] % 12 == 5
    assert len(_beats.beat_track(np.zeros(50, np.float32), rate, BEAT_HOP, 120.0, 100.0)) == 0
