"""SyncNet (syncnet_python) port: fixture conformance, offset plumbing, checkpoint loading.

Fill-rule weights make the network's outputs reproducible but meaningless, so the AV
offset tests use a stand-in model whose embeddings encode the content directly: they
check the windowing, MFCC alignment, distance search and offset sign. Real offsets
(and meaningful LSE-D/LSE-C values) need the official ``syncnet_v2.model``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from scipy.signal import medfilt

from avatarlab.engines._fill import fill_state_dict
from avatarlab.errors import CheckpointError, MissingWeightsError, OptionError
from avatarlab.metrics import syncnet as sn
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.crops import face_crops

FORWARD_TOL = 1e-4  # fixtures README
EVAL_TOL = 1e-2


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "syncnet_python.npz"))


@pytest.fixture(scope="module")
def filled():
    return fill_state_dict(sn.new_syncnet())


@pytest.fixture(scope="module")
def reference_decode(fixtures_dir, tmp_path_factory):
    """Frames and audio decoded as SyncNetInstance.evaluate does (ffmpeg JPEGs, cv2, wav)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to decode like the reference")
    import cv2
    from scipy.io import wavfile

    video = str(fixtures_dir / "syncnet_face224.mp4")
    tmp = tmp_path_factory.mktemp("syncnet_ref")
    quiet = ["ffmpeg", "-y", "-loglevel", "error", "-i", video]
    subprocess.run([*quiet, "-threads", "1", "-f", "image2", str(tmp / "%06d.jpg")], check=True)
    wav = tmp / "audio.wav"
    audio_args = ["-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", "16000"]
    subprocess.run([*quiet, *audio_args, str(wav)], check=True)
    # cv2.imread gives BGR; our API takes RGB and flips back to BGR for the network.
    files = sorted(glob.glob(os.path.join(tmp, "*.jpg")))
    frames = np.stack([cv2.imread(f)[:, :, ::-1] for f in files])
    _, samples = wavfile.read(wav)
    return frames, samples


def _pdist_loop(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int) -> torch.Tensor:
    """syncnet_python's calc_pdist, written as the reference loops it."""
    win = 2 * vshift + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    rows = [
        torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(win, 1), feat2p[i : i + win])
        for i in range(len(feat1))
    ]
    return torch.stack(rows)


def test_state_dict_is_the_reference_layout(fixtures_dir):
    schema = json.loads((fixtures_dir / "syncnet_schema.json").read_text())["S"]
    got = {k: list(v.shape) for k, v in sn.new_syncnet().state_dict().items()}
    assert got == schema


def test_forward_matches_reference(filled, ref):
    with torch.inference_mode():
        aud = filled.forward_aud(torch.from_numpy(ref["aud_in"])).numpy()
        lip = filled.forward_lip(torch.from_numpy(ref["lip_in_first"])).numpy()
    assert aud.shape == (2, 1024)
    assert np.abs(aud - ref["aud_out"]).max() <= FORWARD_TOL
    assert np.abs(lip[0] - ref["lip_out"][0]).max() <= FORWARD_TOL


@pytest.mark.slow
def test_evaluate_matches_reference(filled, ref, reference_decode):
    frames, samples = reference_decode
    res = sn.evaluate_sync(frames, samples.astype(np.float32) / 32768, filled)
    assert res.offset == int(ref["offset"])
    assert abs(res.min_dist - float(ref["minval"])) <= EVAL_TOL
    assert abs(res.confidence - float(ref["conf"])) <= EVAL_TOL
    assert res.dists.shape == ref["dists"].shape == (195, 31)
    np.testing.assert_allclose(res.dists, ref["dists"], atol=1e-4)
    np.testing.assert_allclose(res.mean_dists, ref["mean_dists"], atol=1e-4)
    median = np.median(res.mean_dists)
    np.testing.assert_allclose(res.frame_conf, median - res.dists[:, 15 - res.offset], atol=1e-6)
    np.testing.assert_array_equal(res.frame_conf_smooth, medfilt(res.frame_conf, 9))


def test_pyav_decode_is_close_to_the_reference_decode(fixtures_dir, reference_decode):
    """The production path skips the JPEG round trip: document how far apart the inputs are."""
    from avatarlab.media import read_audio, read_video

    frames, samples = reference_decode
    path = fixtures_dir / "syncnet_face224.mp4"
    ours = read_video(path).frames
    assert ours.shape == frames.shape == (200, 224, 224, 3)
    assert np.abs(ours.astype(np.int16) - frames).mean() < 8  # JPEG artefacts: 5.3 measured
    pcm = sn.audio_to_int16(read_audio(path, sn.SYNCNET_RATE))
    assert pcm.shape == samples.shape
    assert np.abs(pcm.astype(np.int32) - samples).max() <= 1


def test_calc_pdist_equals_the_reference_loop():
    gen = torch.Generator().manual_seed(0)
    v, a = torch.randn(37, 16, generator=gen), torch.randn(37, 16, generator=gen)
    for vshift in (0, 3, 15):
        got = sn.calc_pdist(v, a, vshift)
        assert got.shape == (37, 2 * vshift + 1)
        torch.testing.assert_close(got, _pdist_loop(v, a, vshift), atol=1e-6, rtol=0)


def test_mfcc_front_end():
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pcm = sn.audio_to_int16(audio)
    assert pcm.dtype == np.int16
    assert np.array_equal(sn.audio_to_int16(pcm.astype(np.float32) / 32768), pcm)
    assert sn.audio_to_int16(np.array([1.5, -1.5, 0.5], np.float32)).tolist() == [
        32767,
        -32768,
        16384,
    ]
    mfcc = sn.syncnet_mfcc(audio)
    # python_speech_features: 25 ms windows every 10 ms -> 1 + ceil((16000 - 400) / 160)
    assert mfcc.shape == (13, 99)
    assert np.array_equal(mfcc, sn.syncnet_mfcc(pcm))


class _CodeModel:
    """Stand-in for SyncNet whose embeddings are the 5 frames' on/off code.

    Lip: mean brightness of each frame of the window (0 or 1). Audio: whether the log
    energy (MFCC c0) of each frame's second MFCC column is > 0, i.e. loud (1) or silent
    (0); that column's 25 ms lie inside the frame, clear of the previous frame's
    pre-emphasis tail.
    """

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 3, 4)) / 255

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0, 0, 1 :: sn.MFCC_PER_FRAME] > 0).float()


def _coded_clip(n: int = 60, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Frames white/black and audio tone/silence following the same random code."""
    code = np.random.default_rng(seed).integers(0, 2, n).astype(bool)
    frames = np.zeros((n, 224, 224, 3), np.uint8)
    frames[code] = 255
    t = np.arange(sn.SAMPLES_PER_FRAME) / sn.SYNCNET_RATE
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    audio = np.concatenate([tone if c else np.zeros_like(tone) for c in code])
    return frames, audio


def _shift_audio(audio: np.ndarray, k: int) -> np.ndarray:
    """Audio of video frame t moved to frame t - k (k > 0: audio leads), length kept."""
    s = k * sn.SAMPLES_PER_FRAME
    if k >= 0:
        return np.concatenate([audio[s:], np.zeros(s, audio.dtype)])
    return np.concatenate([np.zeros(-s, audio.dtype), audio[:s]])


@pytest.mark.parametrize("k", [-2, 0, 3])
def test_av_offset_of_shifted_audio_is_found(k):
    frames, audio = _coded_clip()
    res = sn.evaluate_sync(frames, _shift_audio(audio, k), _CodeModel(), batch_size=7)
    assert res.offset == k
    assert res.dists.shape == (55, 31)
    assert res.min_dist < 0.2
    assert res.confidence > 1.0


def test_lse_metric_resamples_to_25_fps_and_averages_clips():
    metric = create_metric("lse")
    assert metric.requires.weights == ("syncnet_v2",) and metric.requires.audio
    metric._model = _CodeModel()  # type: ignore[attr-defined]
    frames, audio = _coded_clip()
    ctx = EvalContext(fps=50.0, audio=_shift_audio(audio, 3), sample_rate=16000)
    metric.update(np.repeat(frames, 2, axis=0), None, ctx)  # the same clip at 50 fps
    metric.update(frames, None, EvalContext(fps=25.0, audio=audio))
    out = metric.compute()
    assert out["av_offset"] == pytest.approx(1.5)  # clips at +3 and 0
    assert out["lse_d"] < 0.2 and out["lse_c"] > 1.0
    assert metric.per_frame()["sync_conf"].shape == (55,)  # type: ignore[attr-defined]


def test_network_input_is_bgr_0_255_windows():
    """Fill-rule weights make the towers input-independent, so check the input plumbing here."""
    seen = []

    class Recorder(_CodeModel):
        def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return super().forward_lip(x)

    frames = np.zeros((12, 224, 224, 3), np.uint8)
    frames[..., 0], frames[..., 1] = 200, 100  # RGB (200, 100, 0)
    frames[:, 0, 0, 2] = np.arange(12)  # frame index in one blue pixel
    sn.evaluate_sync(frames, np.zeros(12 * 640, np.float32), Recorder(), batch_size=4)
    x = torch.cat(seen)
    assert x.shape == (7, 3, 5, 224, 224) and x.dtype == torch.float32
    assert (x[:, 1, :, 1, 1] == 100).all() and (x[:, 2, :, 1, 1] == 200).all()  # B, G, R
    assert x[:, 0, :, 0, 0].tolist() == [[i + k for k in range(5)] for i in range(7)]


def test_wrong_frame_size_is_refused():
    with pytest.raises(OptionError, match="224"):
        sn.evaluate_sync(np.zeros((10, 96, 96, 3), np.uint8), np.zeros(6400), _CodeModel())


def test_face_crops_follow_run_pipeline_geometry():
    yy, xx = np.mgrid[0:400, 0:400]
    frame = np.stack([xx // 2, yy // 2, np.zeros_like(xx)], axis=-1).astype(np.uint8)
    box = np.array([[100.0, 100.0, 200.0, 200.0]])  # half-size 50, centre (150, 150)
    crop = face_crops(frame[None], box)[0]
    # rows 150-50 .. 150+50*1.8, cols 150-50*1.4 .. 150+50*1.4, resized to 224
    assert abs(int(crop[0, 0, 0]) - 80 // 2) <= 1 and abs(int(crop[0, 0, 1]) - 100 // 2) <= 1
    assert abs(int(crop[-1, -1, 0]) - 219 // 2) <= 1 and abs(int(crop[-1, -1, 1]) - 239 // 2) <= 1
    # a frame without a face takes its neighbours' box, as the reference interpolates tracks
    two = face_crops(np.stack([frame, frame]), np.vstack([box, [[np.nan] * 4]]))
    assert np.array_equal(two[1], crop)


def test_load_syncnet_checks_the_file(tmp_path, filled):
    good = tmp_path / "syncnet_v2.model"
    torch.save(filled.state_dict(), good)
    model = sn.load_syncnet(tmp_path)  # a folder holding the file works too
    x = torch.zeros(1, 1, 13, 20)
    with torch.inference_mode():
        torch.testing.assert_close(model.forward_aud(x), filled.forward_aud(x))

    bad = filled.state_dict()
    bad.pop("netfclip.3.bias")
    bad["netcnnaud.0.weight"] = torch.zeros(64, 1, 5, 5)
    torch.save(bad, tmp_path / "bad.model")
    with pytest.raises(CheckpointError, match=r"1 missing keys.*netcnnaud\.0\.weight"):
        sn.load_syncnet(tmp_path / "bad.model")

    from avatarlab.engines.wav2lip.model import SyncNetColor

    torch.save({"state_dict": SyncNetColor().state_dict()}, tmp_path / "expert.pth")
    with pytest.raises(CheckpointError, match="looks like 'lipsync_expert.pth'.*robots.ox.ac.uk"):
        sn.load_syncnet(tmp_path / "expert.pth")

    (tmp_path / "junk.model").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        sn.load_syncnet(tmp_path / "junk.model")

    with pytest.raises(MissingWeightsError, match="robots.ox.ac.uk.*syncnet_v2.model"):
        sn.load_syncnet(tmp_path / "absent.model")
