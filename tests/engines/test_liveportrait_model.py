"""LivePortrait's five networks against the reference fixtures (fill rule B).

Tolerances. F, M, W, the keypoint transform, stitching and retargeting match the
fixtures to float32 rounding (README: 1e-4 absolute, 1e-5 relative on sums). The SPADE
generator G is not that well conditioned under rule B: its spectral norms divide by
``u^T W v`` of filled, non-singular vectors, and the stacked instance norms amplify
rounding. Measured: G run in float64 (the exact value) is 1.7e-3 from the reference's
float32 output and 5.2e-3 from ours, so no float32 port whose reductions round
differently can reach 1e-4 there. G's output and the W+G chain image are therefore
checked at that spread (max, mean, correlation, sums), W's parts of the chain
(occlusion, deformation) at the README's tolerance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarlab.engines._fill import fill_state_dict
from avatarlab.engines.liveportrait import keypoints as kpt
from avatarlab.engines.liveportrait.model import LivePortraitModels
from avatarlab.engines.liveportrait.networks import state_dict_schema

ABS = 1e-4
REL = 1e-5
G_MAX = 5e-2  # measured: G alone 5.4e-3, the W+G chain 2.3e-2 (W's 1e-6 differences amplified)
G_MEAN = 2e-3  # measured 8e-4 on the chain; a wrong layer gives > 1e-2


def det(shape: tuple[int, ...], phase: float, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """The README's deterministic input ``lo + (hi - lo) * (0.5 + 0.5 sin(0.0137 i + phase))``."""
    n = int(np.prod(shape))
    v = 0.5 + 0.5 * np.sin(0.0137 * np.arange(n, dtype=np.float64) + phase)
    return torch.from_numpy((lo + (hi - lo) * v).reshape(shape).astype(np.float32))


def stats(t: torch.Tensor) -> np.ndarray:
    a = t.detach().double().numpy()
    return np.array([a.sum(), np.abs(a).sum(), a.std(), a.min(), a.max()])


def close(ours: torch.Tensor | np.ndarray, ref: np.ndarray, tol: float = ABS) -> None:
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)


def close_stats(ours: torch.Tensor, ref: np.ndarray) -> None:
    s = stats(ours)
    # sums relative 1e-5 (sum |x| sets the scale of the signed sum), spread and extremes 1e-4
    scale = max(abs(ref[1]), 1e-12)
    assert abs(s[0] - ref[0]) <= REL * scale, (s[0], ref[0])
    assert abs(s[1] - ref[1]) <= REL * scale, (s[1], ref[1])
    np.testing.assert_allclose(s[2:], ref[2:], rtol=0, atol=ABS)


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "liveportrait" / "liveportrait.npz"))


@pytest.fixture(scope="module")
def lp() -> LivePortraitModels:
    torch.manual_seed(0)
    models = LivePortraitModels.build()
    for net in models.networks().values():
        fill_state_dict(net, "B")
    return models


@pytest.fixture(scope="module")
def source(lp, ref):
    x = torch.from_numpy(ref["in_source"])
    info = lp.kp_info(x)
    return {"feature": lp.feature(x), "raw": lp.motion_extractor(x), "info": info}


def test_state_dict_schemas_are_the_reference(fixtures_dir):
    schema = json.loads((fixtures_dir / "liveportrait" / "liveportrait_schema.json").read_text())
    for name in (
        "appearance_feature_extractor",
        "motion_extractor",
        "warping_module",
        "spade_generator",
        "stitching",
        "lip",
        "eye",
    ):
        key = name if name in schema else f"stitching_retargeting_module.{name}"
        assert state_dict_schema(name) == {k: tuple(v) for k, v in schema[key].items()}, name


def test_appearance_feature_extractor(lp, ref, source):
    close_stats(source["feature"], ref["F_out_stats"])
    close(source["feature"][0, :2, :2], ref["F_out_slice"])
    alone = lp.feature(det((1, 3, 256, 256), 0.9))
    close_stats(alone, ref["F_alone_out_stats"])
    close(alone[0, :2, :2], ref["F_alone_out_slice"])


def test_motion_extractor_raw_outputs(lp, ref, source):
    with torch.no_grad():
        driving = lp.motion_extractor(torch.from_numpy(ref["in_driving"]))
        alone = lp.motion_extractor(det((1, 3, 256, 256), 0.9))
    for key in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp"):
        close(source["raw"][key], ref[f"M_raw_source_{key}"])
        close(driving[key], ref[f"M_raw_driving_{key}"])
        close(alone[key], ref[f"M_alone_{key}"])


def test_keypoint_info_transform_stitching_and_retargeting(lp, ref, source):
    kd = lp.kp_info(torch.from_numpy(ref["in_driving"]))
    for key in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp"):
        close(source["info"][key], ref[f"kpinfo_source_{key}"])
        close(kd[key], ref[f"kpinfo_driving_{key}"])
    x_s, x_d = kpt.transform_keypoint(source["info"]), kpt.transform_keypoint(kd)
    close(x_s, ref["x_s"])
    close(x_d, ref["x_d"])
    close(lp.stitch(x_s, x_d), ref["x_d_stitched"])
    close(lp.retarget_eye(x_s, torch.from_numpy(ref["eye_ratio_in"])), ref["retarget_eye_delta"])
    close(lp.retarget_lip(x_s, torch.from_numpy(ref["lip_ratio_in"])), ref["retarget_lip_delta"])
    # the angles really are degrees from 66 bins: a one-hot bin k gives 3k - 97.5
    one_hot = torch.full((1, 66), -1e4)
    one_hot[0, 40] = 0.0
    assert float(kpt.bins_to_degrees(one_hot)) == pytest.approx(3 * 40 - 97.5)


def test_warping_module_alone(lp, ref):
    with torch.no_grad():
        out = lp.warping_module(
            det((1, 32, 16, 64, 64), 0.7, -1, 1),
            kp_driving=det((1, 21, 3), 2.3, -0.5, 0.5),
            kp_source=det((1, 21, 3), 1.1, -0.5, 0.5),
        )
    close_stats(out["out"], ref["W_alone_out_stats"])
    close(out["out"][0, :4], ref["W_alone_out_slice"])
    close(out["occlusion_map"], ref["W_alone_occlusion_map"])
    close(out["deformation"][0, :2], ref["W_alone_deformation_slice"])


def _check_image(ours: torch.Tensor, ref: np.ndarray) -> None:
    a, b = ours.detach().double().numpy(), ref.astype(np.float64)
    assert a.shape == b.shape
    diff = np.abs(a - b)
    assert diff.max() <= G_MAX and diff.mean() <= G_MEAN, (diff.max(), diff.mean())
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9999
    assert abs(a.sum() - b.sum()) <= 1e-4 * np.abs(b).sum()


@pytest.mark.slow
def test_spade_generator_alone(lp, ref):
    with torch.no_grad():
        out = lp.spade_generator(det((1, 256, 64, 64), 0.3, -1, 1))
    _check_image(out, ref["G_alone_out"])


@pytest.mark.slow
def test_warp_decode_chain(lp, ref, source):
    kd = lp.kp_info(torch.from_numpy(ref["in_driving"]))
    x_s = kpt.transform_keypoint(source["info"])
    x_d = lp.stitch(x_s, kpt.transform_keypoint(kd))
    out = lp.warp_decode(source["feature"], x_s, x_d)
    close(out["occlusion_map"], ref["chain_occlusion_map"])
    close_stats(out["deformation"], ref["chain_deformation_stats"])
    _check_image(out["out"], ref["chain_out_image"])
