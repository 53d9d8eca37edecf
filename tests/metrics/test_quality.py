"""MAE/MSE/PSNR/SSIM against scikit-image and the mmagic/BasicSR conventions on real frames."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from avatarlab.errors import OptionError
from avatarlab.media import iter_frames, write_video
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.quality import PixelOptions, pixel_errors, psnr, ssim

TOL = 1e-6


def _frames(path: Path, n: int, step: int = 1) -> np.ndarray:
    frames = (f for f, _ in iter_frames(path))
    return np.stack(list(itertools.islice(frames, 0, n * step, step)))


@pytest.fixture(scope="module")
def pairs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """A clip's frames and generated counterparts: blurred, re-encoded, shifted by 2 frames."""
    clip = _frames(data_dir / "video" / "hdtf_aoc_8s.mp4", 6)
    encoded = tmp_path_factory.mktemp("reenc") / "reenc.mp4"
    write_video(encoded, clip, 25, crf=38)
    return {
        "ref": clip[:4],
        "blurred": np.stack([cv2.GaussianBlur(f, (7, 7), 1.6) for f in clip[:4]]),
        "reencoded": _frames(encoded, 4),
        "shifted": clip[2:6],
    }


def _sk_ssim(a: np.ndarray, b: np.ndarray, **kw: object) -> float:
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            **kw,
        )
    )


@pytest.mark.parametrize("kind", ["blurred", "reencoded", "shifted"])
def test_rgb_psnr_ssim_equal_skimage(pairs: dict[str, np.ndarray], kind: str) -> None:
    ref, pred = pairs["ref"], pairs[kind]
    ours_ssim, ours_psnr = ssim(pred, ref), psnr(pred, ref)
    for i in range(len(ref)):
        assert abs(ours_ssim[i] - _sk_ssim(pred[i], ref[i], channel_axis=-1)) <= TOL
        assert abs(ours_psnr[i] - peak_signal_noise_ratio(ref[i], pred[i], data_range=255)) <= TOL
    assert 0.3 < ours_ssim.mean() < 1.0 and 15 < ours_psnr.mean() < 60


def _mmcv_y(frame: np.ndarray) -> np.ndarray:
    """mmagic's ``img_transform(convert_to='Y')``: mmcv ``rgb2ycbcr`` in float32."""
    img = frame.astype(np.float32) / 255.0
    y = (np.dot(img, [65.481, 128.553, 24.966]) + 16.0) / 255.0
    return (y.astype(np.float32) * 255.0).astype(np.float64)


def _basicsr_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR's ``_ssim``: 11x11 window by ``cv2.filter2D`` on float64, ``[5:-5, 5:-5]``."""
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.T)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1 = cv2.filter2D(a, -1, win)[5:-5, 5:-5]
    mu2 = cv2.filter2D(b, -1, win)[5:-5, 5:-5]
    s1 = cv2.filter2D(a * a, -1, win)[5:-5, 5:-5] - mu1**2
    s2 = cv2.filter2D(b * b, -1, win)[5:-5, 5:-5] - mu2**2
    s12 = cv2.filter2D(a * b, -1, win)[5:-5, 5:-5] - mu1 * mu2
    num = (2 * mu1 * mu2 + c1) * (2 * s12 + c2)
    return float(np.mean(num / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))))


def test_y_channel_and_crop_follow_mmagic(pairs: dict[str, np.ndarray]) -> None:
    ref, pred = pairs["ref"], pairs["reencoded"]
    opts = PixelOptions(y_channel=True, crop_border=4)
    ours_ssim, ours_psnr = ssim(pred, ref, opts), psnr(pred, ref, opts)
    for i in range(len(ref)):
        yr, yp = _mmcv_y(ref[i])[4:-4, 4:-4], _mmcv_y(pred[i])[4:-4, 4:-4]
        assert abs(ours_ssim[i] - _sk_ssim(yp, yr)) <= TOL
        assert abs(ours_ssim[i] - _basicsr_ssim(yp, yr)) <= TOL
        mse = np.mean((yr - yp) ** 2)
        assert abs(ours_psnr[i] - 20.0 * np.log10(255.0 / np.sqrt(mse))) <= TOL
        # mmagic filters float32 images in float32: same definition, float32 rounding.
        assert (
            abs(ours_ssim[i] - _basicsr_ssim(yp.astype(np.float32), yr.astype(np.float32))) < 1e-4
        )


def test_mae_mse_are_on_unit_range(pairs: dict[str, np.ndarray]) -> None:
    ref, pred = pairs["ref"], pairs["blurred"]
    errs = pixel_errors(pred, ref)
    diff = pred.astype(np.float64) / 255.0 - ref.astype(np.float64) / 255.0
    np.testing.assert_allclose(errs["mae"], np.abs(diff).mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(errs["mse"], (diff**2).mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(errs["psnr"], 10 * np.log10(1.0 / errs["mse"]), rtol=1e-12)


def test_metrics_by_name_accumulate_frames(pairs: dict[str, np.ndarray]) -> None:
    ref, pred = pairs["ref"], pairs["blurred"]
    ctx = EvalContext()
    expected = {"ssim": ssim(pred, ref), "psnr": psnr(pred, ref)}
    for name, values in expected.items():
        metric = create_metric(name)
        metric.update(pred[:3], ref[:3], ctx)
        metric.update(pred[3], ref[3], ctx)  # a single frame is a batch of one
        assert metric.compute()[name] == pytest.approx(values.mean(), abs=1e-12)
        np.testing.assert_allclose(metric.per_frame()[name], values[3:])  # type: ignore[attr-defined]
        metric.reset()
        assert math.isnan(metric.compute()[name])
    mae = create_metric("mae", y_channel=True, crop_border=2)
    mae.update(pred, ref, ctx)
    assert "Y (BT.601" in mae.conventions and "crop 2 px" in mae.conventions
    assert mae.compute()["mae"] == pytest.approx(
        pixel_errors(pred, ref, PixelOptions(True, 2))["mae"].mean()
    )


def test_psnr_of_identical_frames() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    b = a.copy()
    b[1, 0, 0, 0] ^= 1
    metric = create_metric("psnr")
    metric.update(b, a, EvalContext())
    out = metric.compute()
    assert math.isinf(out["psnr"]) and out["psnr_identical_frames"] == 1.0
    (note,) = metric.notes(out)  # the clip's notes say why, in the API, report and CLI
    assert note.startswith("psnr is +inf because 1 frames equal the reference exactly")
    # Pooled MSE: one unit error over two frames of 32x40x3 values.
    assert out["psnr_pooled"] == pytest.approx(10 * np.log10(255.0**2 * 2 * 32 * 40 * 3))
    assert ssim(a, a)[0] == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs_are_option_errors() -> None:
    a = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(OptionError, match="differ in shape"):
        psnr(a, a[:1])
    with pytest.raises(OptionError, match="at least 11x11"):
        ssim(a, a, PixelOptions(crop_border=3))
    with pytest.raises(OptionError, match="crop_border"):
        PixelOptions(crop_border=-1)
    with pytest.raises(OptionError, match="reference"):
        create_metric("ssim").update(a, None, EvalContext())
