"""FID/IS: Frechet distance and IS formulas, the Inception layout, loading and forward plumbing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import avatarlab.metrics._inception as inception_module
import avatarlab.metrics.fid as fid_module
from avatarlab.errors import MissingWeightsError, OptionError
from avatarlab.metrics._inception import FIDInceptionV3, inception_schema
from avatarlab.metrics.base import EvalContext, create_metric
from avatarlab.metrics.fid import (
    FID_INCEPTION,
    GaussianStats,
    frechet_distance,
    inception_outputs,
    inception_score,
    load_inception,
)


def _random_cov(rng: np.random.Generator, dim: int, samples: int) -> np.ndarray:
    x = rng.normal(size=(samples, dim)) @ rng.normal(size=(dim, dim))
    return np.cov(x, rowvar=False)


def _frechet_eigh(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), via symmetric eigendecompositions only."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_frechet_distance_equals_float64_reference() -> None:
    rng = np.random.default_rng(0)
    for dim in (8, 64):
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        s1, s2 = _random_cov(rng, dim, 4 * dim), _random_cov(rng, dim, 4 * dim)
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(_frechet_eigh(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)
    # Diagonal covariances: sum of (m1 - m2)^2 + (sqrt(v1) - sqrt(v2))^2.
    v1, v2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    closed = np.sum((mu1[:5] - mu2[:5]) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1[:5], np.diag(v1), mu2[:5], np.diag(v2)) == pytest.approx(closed)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_singular_covariances() -> None:
    """Fewer samples than dimensions (the usual per-clip case): finite, matches the reference."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 48)), rng.normal(loc=0.3, size=(20, 48))
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert math.isfinite(ours)
    assert ours == pytest.approx(_frechet_eigh(mu1, s1, mu2, s2), rel=1e-6)


def test_streaming_stats_equal_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(loc=0.4, scale=0.3, size=(70, 16)).astype(np.float32)
    first, second = GaussianStats(16), GaussianStats(16)
    first.add(x[:10])  # kept as features
    second.add(x[10:40])  # folded into sums (more rows than dimensions)
    second.add(x[40:])
    first.merge(second)
    assert first.count == 70
    mu, cov = first.mean_cov()
    np.testing.assert_allclose(mu, np.mean(x, axis=0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-14)


def _isc_torch_fidelity(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """torch-fidelity's ``isc_features_to_metric`` (torch, float64)."""
    feature = torch.from_numpy(logits)
    n = feature.shape[0]
    feature = feature[np.random.RandomState(2020).permutation(n), :].double()
    p, log_p = feature.softmax(dim=1), feature.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        q = p[part].mean(dim=0, keepdim=True)
        scores.append((p[part] * (log_p[part] - q.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(57, 1008)).astype(np.float32)
    mean, std = inception_score(logits)
    ref_mean, ref_std = _isc_torch_fidelity(logits, 10)
    assert mean == pytest.approx(ref_mean, rel=1e-12) and std == pytest.approx(ref_std, rel=1e-9)
    assert inception_score(np.zeros((20, 1008)))[0] == pytest.approx(1.0)
    confident = np.full((32, 1008), -50.0)
    confident[np.arange(32), np.arange(32) % 4] = 50.0  # 4 classes, evenly used per split
    assert inception_score(confident, splits=4, shuffle=False)[0] == pytest.approx(4.0, rel=1e-6)
    with pytest.raises(OptionError, match="needs >= 10"):
        inception_score(logits[:5])


def _conv(cin: int, cout: int, kh: int, kw: int) -> dict[str, tuple[int, ...]]:
    return {
        "conv.weight": (cout, cin, kh, kw),
        "bn.weight": (cout,),
        "bn.bias": (cout,),
        "bn.running_mean": (cout,),
        "bn.running_var": (cout,),
        "bn.num_batches_tracked": (),
    }


def _official_layout() -> dict[str, tuple[int, ...]]:
    """torchvision ``Inception3(num_classes=1008, aux_logits=False)`` with pytorch-fid's
    FIDInception blocks (same parameters as torchvision's), written out from their code."""
    convs: dict[str, tuple[int, int, int, int]] = {
        "Conv2d_1a_3x3": (3, 32, 3, 3),
        "Conv2d_2a_3x3": (32, 32, 3, 3),
        "Conv2d_2b_3x3": (32, 64, 3, 3),
        "Conv2d_3b_1x1": (64, 80, 1, 1),
        "Conv2d_4a_3x3": (80, 192, 3, 3),
    }
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        convs |= {
            f"{name}.branch1x1": (cin, 64, 1, 1),
            f"{name}.branch5x5_1": (cin, 48, 1, 1),
            f"{name}.branch5x5_2": (48, 64, 5, 5),
            f"{name}.branch3x3dbl_1": (cin, 64, 1, 1),
            f"{name}.branch3x3dbl_2": (64, 96, 3, 3),
            f"{name}.branch3x3dbl_3": (96, 96, 3, 3),
            f"{name}.branch_pool": (cin, pool, 1, 1),
        }
    convs |= {
        "Mixed_6a.branch3x3": (288, 384, 3, 3),
        "Mixed_6a.branch3x3dbl_1": (288, 64, 1, 1),
        "Mixed_6a.branch3x3dbl_2": (64, 96, 3, 3),
        "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3),
    }
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        convs |= {
            f"{name}.branch1x1": (768, 192, 1, 1),
            f"{name}.branch7x7_1": (768, c7, 1, 1),
            f"{name}.branch7x7_2": (c7, c7, 1, 7),
            f"{name}.branch7x7_3": (c7, 192, 7, 1),
            f"{name}.branch7x7dbl_1": (768, c7, 1, 1),
            f"{name}.branch7x7dbl_2": (c7, c7, 7, 1),
            f"{name}.branch7x7dbl_3": (c7, c7, 1, 7),
            f"{name}.branch7x7dbl_4": (c7, c7, 7, 1),
            f"{name}.branch7x7dbl_5": (c7, 192, 1, 7),
            f"{name}.branch_pool": (768, 192, 1, 1),
        }
    convs |= {
        "Mixed_7a.branch3x3_1": (768, 192, 1, 1),
        "Mixed_7a.branch3x3_2": (192, 320, 3, 3),
        "Mixed_7a.branch7x7x3_1": (768, 192, 1, 1),
        "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1),
        "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3),
    }
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        convs |= {
            f"{name}.branch1x1": (cin, 320, 1, 1),
            f"{name}.branch3x3_1": (cin, 384, 1, 1),
            f"{name}.branch3x3_2a": (384, 384, 1, 3),
            f"{name}.branch3x3_2b": (384, 384, 3, 1),
            f"{name}.branch3x3dbl_1": (cin, 448, 1, 1),
            f"{name}.branch3x3dbl_2": (448, 384, 3, 3),
            f"{name}.branch3x3dbl_3a": (384, 384, 1, 3),
            f"{name}.branch3x3dbl_3b": (384, 384, 3, 1),
            f"{name}.branch_pool": (cin, 192, 1, 1),
        }
    layout = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}
    for name, spec in convs.items():
        layout |= {f"{name}.{k}": v for k, v in _conv(*spec).items()}
    return layout


def test_state_dict_layout_is_the_official_one() -> None:
    expected = _official_layout()
    assert inception_schema() == expected
    assert len(expected) == 94 * 6 + 2  # 94 conv + batch-norm units and the classifier


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights saved like the official file (an old plain state dict: no
    ``num_batches_tracked``), under the official file name."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("weights") / FID_INCEPTION.filename
    torch.save(state, path)
    return path


def test_missing_weights_name_the_file_and_source(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        load_inception(tmp_path)
    assert FID_INCEPTION.filename in str(err.value)
    assert "github.com/mseitzer/pytorch-fid/releases" in str(err.value)


@pytest.mark.slow
def test_forward(weights_file: Path) -> None:
    model = load_inception(weights_file)
    assert load_inception(weights_file.parent) is model  # a folder works, and models are shared
    pred = np.random.default_rng(4).integers(0, 256, (1, 40, 52, 3), dtype=np.uint8)
    feats, logits = inception_outputs(pred, model)
    assert feats.shape == (1, 2048) and logits.shape == (1, 1008)
    assert np.isfinite(feats).all() and (feats >= 0).all()  # ReLU then average pooling
    weight = model.fc.weight.detach().numpy()
    np.testing.assert_allclose(logits, feats @ weight.T, rtol=1e-4, atol=1e-4)
    x = torch.from_numpy(pred).permute(0, 3, 1, 2).float() / 255
    expected = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(model.preprocess(x), expected)


@pytest.mark.slow
def test_metrics_by_name(weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Plumbing only: a 75x75 input (Inception's smallest) keeps the forward passes cheap,
    # and sqrtm of 2048x2048 (a minute here) is replaced by recording its inputs.
    monkeypatch.setattr(inception_module, "INPUT_SIZE", 75)
    seen: list[tuple[np.ndarray, ...]] = []
    monkeypatch.setattr(fid_module, "frechet_distance", lambda *a: seen.append(a) or 1.5)
    model = load_inception(weights_file)
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 256, (3, 40, 52, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, (3, 40, 52, 3), dtype=np.uint8)
    ctx = EvalContext()
    fid = create_metric("fid", weights=str(weights_file), batch_size=2)
    fid.update(pred[:2], ref[:2], ctx)
    clip2 = create_metric("fid", weights=str(weights_file))
    clip2.update(pred[2:], ref[2:], ctx)
    fid.merge_state(clip2.state())  # type: ignore[attr-defined]  # the runner pools clips so
    assert fid.compute()["fid"] == 1.5
    feats, logits = inception_outputs(np.concatenate([pred, ref]), model)
    f64 = feats.astype(np.float64)
    for got, want in zip(
        seen[0],
        (
            f64[:3].mean(0),
            np.cov(f64[:3], rowvar=False),
            f64[3:].mean(0),
            np.cov(f64[3:], rowvar=False),
        ),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    score = create_metric("is", weights=str(weights_file), splits=3)
    score.update(pred, None, ctx)
    assert score.compute()["is"] == pytest.approx(
        inception_score(logits[:3], splits=3)[0], rel=1e-6
    )
