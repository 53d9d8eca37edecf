"""NIQE: official pristine parameters, a loop-by-loop BasicSR-style reference, published values."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import convolve
from scipy.special import gamma

from avatarlab.errors import OptionError
from avatarlab.media import iter_frames
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.niqe import (
    block_features,
    gaussian_1d,
    imresize_half,
    mscn,
    niqe,
    niqe_luma,
    niqe_score,
    pristine_model,
)

#: sha256 of the pristine model's float64 bytes (little-endian, C order): the values of
#: the 1,400-line literal module they replaced, bit for bit.
PRISTINE_SHA256 = {
    "mu": "7e45b7ff8e031a95e982af2a609650ffa3d06eed4b166c1fbc3a380fb19f2750",
    "cov": "62e3a43c9ae55319fc0ecea5519108e6ead431ea131e1314378af4732b927b70",
}


def _sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f8").tobytes()).hexdigest()


def test_pristine_model_is_the_official_one() -> None:
    mu, cov = pristine_model()
    assert {"mu": _sha256(mu), "cov": _sha256(cov)} == PRISTINE_SHA256
    assert pristine_model()[0] is mu  # loaded once
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_array_equal(cov, cov.T)  # every off-diagonal value appears twice
    assert np.linalg.eigvalsh(cov).min() > 0
    # Spot values of BasicSR's niqe_pris_params.npz (MATLAB modelparameters.mat).
    assert mu[0] == 2.6013136801541448 and mu[18] == 2.969494026974945
    assert cov[0, 0] == 0.45347810202943506 and cov[18, 18] == 0.80888047442460198
    # The npz's 7x7 window is fspecial('gaussian', 7, 7/6): our separable factor rebuilds it.
    win = np.outer(gaussian_1d(), gaussian_1d())
    assert win[3, 3] == pytest.approx(0.11739635539001349, abs=1e-16)
    assert win[0, 0] == pytest.approx(0.00015775863580826989, abs=1e-18)
    assert win[0, 3] == pytest.approx(0.0043035205210607934, abs=1e-17)


# ---- an independent, loop-by-loop port of BasicSR's niqe.py (float64, MATLAB resize) ----


def _ref_aggd(block: np.ndarray) -> tuple[float, float, float]:
    x = block.ravel()
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))
    with np.errstate(all="ignore"):
        left = np.sqrt(np.mean(x[x < 0] ** 2)) if (x < 0).any() else math.nan
        right = np.sqrt(np.mean(x[x > 0] ** 2)) if (x > 0).any() else math.nan
        g = left / right
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        alpha = gam[np.argmin((r_gam - rnorm) ** 2)]
    k = math.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


def _ref_features(block: np.ndarray) -> list[float]:
    a, bl, br = _ref_aggd(block)
    feat = [a, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a, bl, br = _ref_aggd(block * np.roll(block, shift, axis=(0, 1)))
        feat += [a, (br - bl) * (gamma(2 / a) / gamma(1 / a)), bl, br]
    return feat


def _ref_resize_axis0(img: np.ndarray) -> np.ndarray:
    """BasicSR's ``calculate_weights_indices`` + symmetric padding, scale 0.5, antialiased."""
    n = img.shape[0]
    out_n = math.ceil(n / 2)
    u = np.arange(1, out_n + 1) / 0.5 + 0.5 * (1 - 1 / 0.5)
    left = np.floor(u - 4)
    ind = left[:, None] + np.arange(10)[None, :]
    d = np.abs(u[:, None] - ind) * 0.5
    cubic = (1.5 * d**3 - 2.5 * d**2 + 1) * (d <= 1) + (-0.5 * d**3 + 2.5 * d**2 - 4 * d + 2) * (
        (d > 1) & (d <= 2)
    )
    w = 0.5 * cubic
    w /= w.sum(1, keepdims=True)
    if (w[:, 0] == 0).any():
        w, ind = w[:, 1:], ind[:, 1:]
    if (w[:, -1] == 0).any():
        w, ind = w[:, :-1], ind[:, :-1]
    pad_s, pad_e = int(-ind.min() + 1), int(ind.max() - n)
    padded = np.pad(img, ((pad_s, pad_e), (0, 0)), mode="symmetric")
    rows = (ind + pad_s - 1).astype(int)
    return np.stack([w[i] @ padded[rows[i]] for i in range(out_n)])


def _ref_niqe(y: np.ndarray, snap: bool = False) -> float:
    x = np.arange(7) - 3.0
    win = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    win /= win.sum()
    nbh, nbw = y.shape[0] // 96, y.shape[1] // 96
    img = y[: nbh * 96, : nbw * 96].astype(np.float64)
    dist = []
    for scale in (1, 2):
        mu = convolve(img, win, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(img * img, win, mode="nearest") - mu * mu))
        norm = (img - mu) / (sigma + 1)
        if snap:
            norm[np.abs(norm) < 1e-9] = 0.0
        bs = 96 // scale
        dist.append(
            [
                _ref_features(norm[i * bs : (i + 1) * bs, j * bs : (j + 1) * bs])
                for j in range(nbw)
                for i in range(nbh)
            ]
        )
        img = _ref_resize_axis0(_ref_resize_axis0(img).T).T
    feats = np.concatenate([np.array(dist[0]), np.array(dist[1])], axis=1)
    mu_p, cov_p = pristine_model()
    mu = np.nanmean(feats, axis=0)
    cov = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    d = mu_p - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d))


@pytest.fixture(scope="module")
def frame(data_dir: Path) -> np.ndarray:
    frames = (f for f, _ in iter_frames(data_dir / "video" / "talk_b.mp4"))
    return next(itertools.islice(frames, 20, None))


def _luma(frame: np.ndarray) -> np.ndarray:
    y = 16.0 + frame.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0
    return np.round(y)


def test_matches_a_loop_reference(frame: np.ndarray) -> None:
    y = _luma(frame)[230:518, 250:634]  # 3 x 4 blocks of the face
    # Compressed frames always hold flat 7x7 neighbourhoods, whose MSCN is 0 up to
    # rounding residues that each implementation produces differently (module doc).
    k = np.ones((7, 7), np.uint8)
    assert (cv2.dilate(y, k) == cv2.erode(y, k)).any()
    assert niqe_luma(y) == pytest.approx(_ref_niqe(y, snap=True), rel=1e-9)
    # Without zeroing the residues the reference drifts by its own rounding noise.
    assert niqe_luma(y) == pytest.approx(_ref_niqe(y), rel=5e-3)


def test_degenerate_blocks_follow_basicsr(frame: np.ndarray) -> None:
    norm = mscn(_luma(frame)[230:518, 250:634])
    norm[:96, :96] = 0.0  # a flat tile: NaN features, alpha falls back to the grid start
    ours = block_features(norm, 96)
    ref = np.array(
        [
            _ref_features(norm[i * 96 : (i + 1) * 96, j * 96 : (j + 1) * 96])
            for j in range(4)
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-12, equal_nan=True)
    assert np.isnan(ours[0, 1]) and ours[0, 0] == 0.2
    feats = np.concatenate([ours, ours[::-1] * 1.01], axis=1)
    mu_p, cov_p = pristine_model()
    d = mu_p - np.nanmean(feats, axis=0)
    cov = np.cov(feats[1:-1], rowvar=False)  # rows 0 and 11 hold the NaN tile
    assert niqe_score(feats) == pytest.approx(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d))


def test_resize_is_matlab_bicubic() -> None:
    rng = np.random.default_rng(3)
    img = rng.random((50, 37)) * 255
    ref = _ref_resize_axis0(_ref_resize_axis0(img).T).T
    np.testing.assert_allclose(imresize_half(img), ref, rtol=0, atol=1e-10)
    ramp = np.tile(np.arange(40.0), (24, 1))  # cubic convolution reproduces linear ramps
    expected = np.broadcast_to(2 * np.arange(3, 17) + 0.5, (12, 14))
    np.testing.assert_allclose(imresize_half(ramp)[:, 3:-3], expected)


def _noise_image() -> np.ndarray:
    """image-scout's test_niqe.gen_noise: gray 288x288 from a 31-bit LCG (seed 12345)."""
    seed, vals = 12345, []
    for _ in range(288 * 288):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        vals.append(80 + ((seed >> 16) % 96))
    gray = np.array(vals, dtype=np.uint8).reshape(288, 288)
    return np.repeat(gray[..., None], 3, axis=2)


def test_published_value() -> None:
    """WenChing0617/image-scout freezes 64.525643 for this image, computed by a float64
    port that gives 5.7295739 on BasicSR's baboon.png (MATLAB R2021a: 5.72957338)."""
    assert niqe(_noise_image())[0] == pytest.approx(64.525643, abs=1e-5)


def test_metric_by_name(frame: np.ndarray) -> None:
    metric = create_metric("niqe", crop_border=4)
    assert not metric.requires.reference
    metric.update(np.stack([frame, frame[:, ::-1]]), None, EvalContext())
    values = metric.per_frame()["niqe"]  # type: ignore[attr-defined]
    assert values.shape == (2,) and np.isfinite(values).all()
    assert metric.compute()["niqe"] == pytest.approx(values.mean())
    assert values[0] == pytest.approx(niqe(frame, crop_border=4)[0])
    with pytest.raises(OptionError, match="two 96x96 blocks"):
        niqe(np.zeros((100, 150, 3), np.uint8))
