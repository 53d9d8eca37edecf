"""GFPGANv1Clean against the reference fixtures (fill rule B) and its checkpoint loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarlab.engines._fill import fill_state_dict, fill_values, filled_state_dict
from avatarlab.engines.gfpgan import load_gfpgan
from avatarlab.engines.gfpgan.model import GFPGANv1Clean, state_dict_schema
from avatarlab.errors import CheckpointError, MissingWeightsError
from avatarlab.weights import read_state_dict

TOL = 1e-4  # restoration README: absolute, on outputs
REL = 1e-5  # ... and relative on sums


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "restoration" / "restoration.npz"))


@pytest.fixture(scope="module")
def filled():
    return fill_state_dict(GFPGANv1Clean(), rule="B")


def test_rule_b_golden_values():
    # k = 0 (bias, 1-D): 0.02 sin(0.37 i); k = 1 (weight (2, 3)): sqrt(3 / 3) sin(0.37 i + 1.3)
    lin = torch.nn.Linear(3, 2)
    state = filled_state_dict(lin.state_dict(), rule="B")
    np.testing.assert_allclose(state["bias"].numpy(), [0.0, 0.02 * np.sin(0.37)], atol=1e-7)
    np.testing.assert_allclose(
        state["weight"].numpy().ravel(), np.sin(0.37 * np.arange(6) + 1.3), atol=1e-7
    )
    # norm-like (1, 1, 1, C): 1 + 0.1 s; running stats 0 / 1; spectral vectors unit length
    np.testing.assert_allclose(
        fill_values(2, (1, 1, 1, 4), "grn.gamma", rule="B").ravel(),
        1 + 0.1 * np.sin(0.37 * np.arange(4) + 2.6),
    )
    assert fill_values(3, (5,), "bn.running_var", rule="B").tolist() == [1.0] * 5
    assert fill_values(3, (5,), "bn.running_mean", rule="B").tolist() == [0.0] * 5
    assert np.linalg.norm(fill_values(7, (6,), "conv.weight_u", rule="B")) == pytest.approx(1.0)


def test_state_dict_schema_is_the_reference(fixtures_dir):
    schema = json.loads((fixtures_dir / "restoration" / "restoration_schema.json").read_text())
    expected = {k: tuple(v) for k, v in schema["gfpgan_v1_clean"].items()}
    assert state_dict_schema() == expected


def test_matches_reference_in_deterministic_noise_mode(filled, ref):
    with torch.inference_mode():
        out = filled(torch.from_numpy(ref["in_face"]), randomize_noise=False).numpy()
    assert out.shape == (1, 3, 512, 512)
    assert np.abs(out - ref["gfpgan_out"]).max() <= TOL
    stats = ref["gfpgan_out_stats"]
    assert out.astype(np.float64).sum() == pytest.approx(stats[0], rel=REL)
    assert np.abs(out.astype(np.float64)).sum() == pytest.approx(stats[1], rel=REL)


def test_randomize_noise_draws_fresh_noise_and_stored_noise_repeats():
    model = fill_state_dict(
        GFPGANv1Clean(out_size=32, channel_multiplier=1, narrow=0.125), rule="B"
    )
    x = torch.linspace(-1, 1, 3 * 32 * 32).reshape(1, 3, 32, 32)
    with torch.inference_mode():
        fixed = [model(x, randomize_noise=False) for _ in range(2)]
        fresh = [model(x, randomize_noise=True) for _ in range(2)]
    assert torch.equal(fixed[0], fixed[1])
    assert (fresh[0] - fresh[1]).abs().max() > 1e-3
    assert (fresh[0] - fixed[0]).abs().max() > 1e-3


def test_batch_items_are_independent():
    model = fill_state_dict(
        GFPGANv1Clean(out_size=32, channel_multiplier=1, narrow=0.125), rule="B"
    )
    x = torch.stack([torch.linspace(-1, 1, 3 * 32 * 32), torch.linspace(1, -1, 3 * 32 * 32)])
    x = x.reshape(2, 3, 32, 32)
    with torch.inference_mode():
        both = model(x, randomize_noise=False)
        one = model(x[1:], randomize_noise=False)
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=0)


def test_official_layout_loads_strictly(filled, tmp_path):
    path = tmp_path / "GFPGANv1.4.pth"
    torch.save({"params_ema": filled.state_dict()}, path)
    model = load_gfpgan(path)
    for key in ("final_linear.weight", "stylegan_decoder.noises.noise3"):
        assert torch.equal(model.state_dict()[key], filled.state_dict()[key])
    assert not model.training


def test_basicsr_containers_prefer_ema_then_params(tmp_path):
    ema, raw = {"w": torch.ones(2)}, {"w": torch.zeros(2)}
    torch.save({"params": raw, "params_ema": ema}, tmp_path / "both.pth")
    torch.save({"params": raw}, tmp_path / "raw.pth")
    assert torch.equal(read_state_dict(tmp_path / "both.pth")["w"], ema["w"])
    assert torch.equal(read_state_dict(tmp_path / "raw.pth")["w"], raw["w"])


def test_wrong_key_or_shape_is_one_clear_line(tmp_path):
    path = tmp_path / "bad.pth"
    bad = {"conv_body_first.weight": torch.zeros(32, 3, 3, 3), "bogus.weight": torch.zeros(1)}
    torch.save({"params_ema": bad}, path)
    with pytest.raises(CheckpointError) as err:
        load_gfpgan(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "conv_body_first.weight: file [32, 3, 3, 3] vs expected [32, 3, 1, 1]" in msg
    assert "unexpected keys (bogus.weight)" in msg
    assert "GFPGANv1.4.pth" in msg and "github.com/TencentARC/GFPGAN/releases" in msg


def test_missing_file_names_the_file_and_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        load_gfpgan(version="1.3")
    msg = str(err.value)
    assert "'GFPGANv1.3.pth'" in msg
    assert "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth" in msg
