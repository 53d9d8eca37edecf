"""LPIPS (v0.1, AlexNet-linear): conformance with lpips 0.1.4 on fill-rule weights saved in
the official layouts (``tests/fixtures/lpips``), properties on real frames, checkpoint
layouts, absent weights, and ``alex.pth`` found inside an installed lpips package."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avatarlab.engines._fill import fill_values, filled_state_dict
from avatarlab.errors import CheckpointError, MissingWeightsError
from avatarlab.metrics import _lpips_net as net
from avatarlab.metrics import perceptual as P
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.planning import plan_metrics
from avatarlab.weights import resolve

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lpips" / "lpips_alex.npz"
TOL = 1e-5  # fixtures README, one torch thread


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Rule-B fills in the official layouts: torchvision's whole AlexNet state dict (its
    unused classifier zeros, as the README allows) and lpips' ``alex.pth``."""
    folder = tmp_path_factory.mktemp("lpips_weights")
    schema = net.alexnet_schema()
    trunk = {
        key: torch.zeros(shape)
        if key.startswith("classifier.")
        else torch.from_numpy(fill_values(k, shape, key, "B")).float()
        for k, (key, shape) in enumerate(sorted(schema.items()))
    }
    torch.save(trunk, folder / "alexnet-owt-7be5be79.pth")
    torch.save(filled_state_dict(net.LinearHeads().state_dict(), "B"), folder / "alex.pth")
    return folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth"


@pytest.fixture(scope="module")
def model(weight_files: tuple[Path, Path]) -> net.LPIPSAlex:
    return P.load_lpips(*weight_files)


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_matches_lpips_on_the_fixture(model, one_thread):
    ref = np.load(FIXTURE)
    for a, b, total, layers in (
        ("in0", "in1", "lpips", "layers"),
        ("big0", "big1", "big_lpips", "big_layers"),
    ):
        got = P.lpips_distance(ref[a], ref[b], model)
        np.testing.assert_allclose(got, ref[layers], atol=TOL, rtol=0)
        np.testing.assert_allclose(got.sum(1), ref[total], atol=TOL, rtol=0)
    assert ref["lpips"][2] == 0.0 and ref["lpips"][:2].min() > 0.1


@pytest.fixture(scope="module")
def frames(data_dir: Path) -> np.ndarray:
    from avatarlab.media import iter_frames

    path = data_dir / "video" / "hdtf_aoc_8s.mp4"
    picked = itertools.islice(iter_frames(path), 0, 40, 10)
    return np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f, _ in picked])


def test_real_frames_identical_zero_and_growing_with_noise_and_blur(model, frames):
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, frames.shape)
    noisy = [np.clip(frames + s * noise, 0, 255).astype(np.uint8) for s in (3, 10, 30)]
    blurred = [np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in frames]) for s in (0.7, 1.5, 3)]
    assert np.all(P.lpips_distance(frames, frames, model).sum(1) == 0.0)
    for series in (noisy, blurred):
        means = [P.lpips_distance(x, frames, model).sum(1).mean() for x in series]
        assert 0 < means[0] < means[1] < means[2], means


def test_metric_means_frames_over_batches(weight_files, frames):
    metric = create_metric("lpips", batch_size=3)
    ctx = EvalContext(
        weights=dict(zip(("lpips_alexnet", "lpips_alex_lin"), map(str, weight_files), strict=True))
    )
    shifted = np.roll(frames, 4, axis=2)
    metric.update(shifted[:3], frames[:3], ctx)
    metric.update(shifted[3:], frames[3:], ctx)
    per_frame = P.lpips_distance(shifted, frames, P.load_lpips(*weight_files)).sum(1)
    assert metric.per_frame()["lpips"].shape == (1,)
    assert metric.compute()["lpips"] == pytest.approx(per_frame.mean(), abs=1e-6)  # batch rounding


def test_files_of_another_layout_fail_in_one_line(weight_files, tmp_path):
    trunk, heads = weight_files
    with pytest.raises(CheckpointError, match=r"looks like 'alex\.pth' instead"):
        P.load_lpips(heads, heads)
    wrong = filled_state_dict(net.LinearHeads().state_dict())
    wrong["lin2.model.1.weight"] = torch.zeros(1, 256, 1, 1)
    torch.save(wrong, tmp_path / "alex.pth")
    with pytest.raises(
        CheckpointError, match=r"lin2\.model\.1\.weight: file \[1, 256, 1, 1\]"
    ) as err:
        P.load_lpips(trunk, tmp_path / "alex.pth")
    assert "\n" not in str(err.value) and "official 'alex.pth'" in str(err.value)
    features_only = {
        k: v for k, v in torch.load(trunk, mmap=True).items() if k.startswith("features")
    }
    torch.save(features_only, tmp_path / "features.pth")
    with pytest.raises(CheckpointError, match=r"6 missing keys \(classifier\.1\.bias"):
        P.load_lpips(tmp_path / "features.pth", heads)


def test_absent_weights_skip_naming_the_files(weight_files, tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "empty"))
    (skip,) = plan_metrics(["lpips"], has_reference=True).skipped
    assert skip.file == "alexnet-owt-7be5be79.pth, alex.pth"
    assert "download.pytorch.org" in skip.source and "pip install --no-deps lpips" in skip.reason
    (skip,) = plan_metrics(["lpips"], True, weights={"lpips_alexnet": weight_files[0]}).skipped
    assert skip.file == "alex.pth"
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        P.load_lpips(None, weight_files[1])


def test_alex_pth_is_found_in_an_installed_lpips_without_importing_it(
    weight_files, tmp_path, monkeypatch
):
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('lpips must not be imported')\n")
    (package / "weights" / "v0.1" / "alex.pth").write_bytes(weight_files[1].read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "empty"))
    assert resolve("lpips_alex_lin") == package / "weights" / "v0.1" / "alex.pth"
    assert plan_metrics(["lpips"], True, weights={"lpips_alexnet": weight_files[0]}).names == (
        "lpips",
    )
