"""CPBD against the ``cpbd`` PyPI package on real frames, and its Canny against scikit-image."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.feature import canny

from avatarlab.errors import OptionError
from avatarlab.media import iter_frames
from avatarlab.metrics import _kernels
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.cpbd import (
    BLOCK,
    CANNY_HIGH,
    CANNY_LOW,
    EDGE_BLOCK_FRACTION,
    _bleed,
    _scipy_gaussian,
    cpbd,
    to_gray,
)


@pytest.fixture(scope="module")
def reference_cpbd() -> Callable[[np.ndarray], float]:
    """``cpbd.compute``; the package imports ``scipy.ndimage.imread`` (gone since scipy 1.2)."""
    mp = pytest.MonkeyPatch()
    import scipy.ndimage

    mp.setattr(scipy.ndimage, "imread", None, raising=False)
    from cpbd.compute import compute

    mp.undo()
    return compute  # type: ignore[no-any-return]


def _frame(path: Path, index: int) -> np.ndarray:
    return next(itertools.islice((f for f, _ in iter_frames(path)), index, None))


@pytest.fixture(scope="module")
def frames(data_dir: Path) -> dict[str, np.ndarray]:
    video = data_dir / "video"
    hdtf = _frame(video / "hdtf_aoc_8s.mp4", 40)
    ok, jpeg = cv2.imencode(".jpg", hdtf, [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert ok
    return {
        "hdtf": hdtf,
        "hdtf_blurred": cv2.GaussianBlur(hdtf, (9, 9), 2.5),
        "hdtf_jpeg": cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED),
        "talk_a_700": _frame(video / "talk_a.mp4", 10),
        "talk_c_590": _frame(video / "talk_c.mp4", 60),
        "expressions": _frame(video / "expressions_silent.mp4", 30),
    }


def _pil_gray(frame: np.ndarray) -> np.ndarray:
    """How the package's command line reads an image: ``imread(path, mode='L')`` (PIL)."""
    return np.asarray(Image.fromarray(frame).convert("L"))


def test_gray_is_pil_luma(frames: dict[str, np.ndarray]) -> None:
    for frame in frames.values():
        np.testing.assert_array_equal(to_gray(frame), _pil_gray(frame).astype(np.float64))


def test_cpbd_equals_the_package(
    frames: dict[str, np.ndarray], reference_cpbd: Callable[[np.ndarray], float]
) -> None:
    names = list(frames)
    ours = cpbd(np.stack([frames[n] for n in names[:3]]))  # same-size batch
    ours = np.concatenate([ours, [cpbd(frames[n])[0] for n in names[3:]]])
    ref = np.array([reference_cpbd(_pil_gray(frames[n])) for n in names])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    assert ours[1] < ours[0]  # blurring lowers the share of sharp edges
    assert len(set(ref.round(6))) == len(ref)  # the frames exercise distinct values


def _canny_kernel(gray: np.ndarray) -> np.ndarray:
    planes = np.empty((5, *gray.shape))
    edges = np.empty(gray.shape, np.uint8)
    stack = np.empty(gray.size, np.int64)
    nms = _kernels.canny_nms(gray, _scipy_gaussian(1.0), _bleed(gray.shape), CANNY_LOW, planes)
    _kernels.hysteresis(nms, CANNY_HIGH, edges, stack)
    return edges.astype(bool)


def test_canny_is_bit_exact(frames: dict[str, np.ndarray]) -> None:
    for name in ("hdtf", "hdtf_blurred", "talk_c_590"):
        gray = to_gray(frames[name])
        np.testing.assert_array_equal(_canny_kernel(gray), canny(gray), err_msg=name)
    odd = np.random.default_rng(1).integers(0, 256, (37, 53)).astype(np.float64)
    np.testing.assert_array_equal(_canny_kernel(odd), canny(odd))


def _weak_ramp() -> np.ndarray:
    """A ramp whose Canny magnitude (~0.14) lies between the thresholds, joined to a strong
    step: its pixels are edges only through hysteresis, so the count bounds cannot decide."""
    ramp = np.tile(np.arange(256) * 0.018, (192, 1))
    ramp[:, 200:] += 50.0
    return ramp


@pytest.mark.parametrize("image", ["talk_a_700", "weak_ramp"])
def test_edge_blocks_match_full_hysteresis(frames: dict[str, np.ndarray], image: str) -> None:
    gray = _weak_ramp() if image == "weak_ramp" else to_gray(frames[image])
    min_edges = BLOCK * BLOCK * EDGE_BLOCK_FRACTION
    planes = np.empty((5, *gray.shape))
    nms = _kernels.canny_nms(gray, _scipy_gaussian(1.0), _bleed(gray.shape), CANNY_LOW, planes)
    nb = (gray.shape[0] // BLOCK, gray.shape[1] // BLOCK)

    def per_block(mask: np.ndarray) -> np.ndarray:
        return (
            mask[: nb[0] * BLOCK, : nb[1] * BLOCK].reshape(nb[0], BLOCK, nb[1], BLOCK).sum((1, 3))
        )

    undecided = (per_block(nms >= CANNY_HIGH) <= min_edges) & (per_block(nms > 0) > min_edges)
    assert undecided.any() == (image == "weak_ramp")
    flags = _kernels.edge_blocks(
        nms,
        CANNY_HIGH,
        BLOCK,
        min_edges,
        np.empty(gray.shape, np.uint8),
        np.empty(gray.size, np.int64),
    )
    np.testing.assert_array_equal(flags, per_block(canny(gray)) > min_edges)


def test_degenerate_images(reference_cpbd: Callable[[np.ndarray], float]) -> None:
    flat = np.full((128, 160, 3), 90, np.uint8)
    assert cpbd(flat)[0] == 0.0 == reference_cpbd(_pil_gray(flat))
    ramp = np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (100, 1, 3))
    assert cpbd(ramp)[0] == pytest.approx(reference_cpbd(_pil_gray(ramp)), abs=1e-12)
    with pytest.raises(OptionError):
        cpbd(np.zeros((2, 2, 3), np.uint8))


def test_metric_by_name(frames: dict[str, np.ndarray]) -> None:
    a, b = frames["hdtf"], frames["hdtf_blurred"]
    metric = create_metric("cpbd", include_reference=True)
    assert metric.requires.reference
    metric.update(np.stack([b, b]), np.stack([a, a]), EvalContext())
    out = metric.compute()
    assert out["cpbd"] == pytest.approx(cpbd(b)[0]) and out["cpbd_ref"] == pytest.approx(cpbd(a)[0])
    assert metric.per_frame()["cpbd"].shape == (2,)  # type: ignore[attr-defined]
    plain = create_metric("cpbd")
    assert not plain.requires.reference
    assert math.isnan(plain.compute()["cpbd"])
