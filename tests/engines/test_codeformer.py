"""CodeFormer against the reference fixtures (fill rule B) and its checkpoint loading.

Tolerances. The code logits and the encoder output are well conditioned and match the
fixtures to float32 rounding (relative 1e-5). The decoded faces are not, under rule B: the
generator's GroupNorms (eps 1e-6) sit on nearly constant maps (every token picks code 1002)
and amplify rounding, so this same code run with 1 and with 2 torch threads differs by up to
0.011 (w = 0) / 0.11 (w = 0.5) in the output (README "conformance"). The README's 1e-4 cannot
be met by any implementation whose reductions round differently from the reference run's;
the outputs are checked at the measured run-to-run spread instead (max, mean, correlation,
sum), together with the exact code choice and the logit/encoder statistics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarlab.engines._fill import fill_state_dict
from avatarlab.engines.codeformer import load_codeformer
from avatarlab.engines.codeformer.model import CodeFormer, state_dict_schema
from avatarlab.errors import CheckpointError

REL = 1e-5
OUT_MAX = {0.0: 0.03, 0.5: 0.2, 1.0: 0.2}  # abs, about twice the 1-vs-2-thread spread
OUT_MEAN = 0.04


def _stats(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return np.array([a.sum(), np.abs(a).sum(), a.std(), a.min(), a.max()])


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "restoration" / "restoration.npz"))


@pytest.fixture(scope="module")
def filled():
    return fill_state_dict(CodeFormer(), rule="B")


@pytest.fixture(scope="module")
def codes(filled, ref):
    with torch.inference_mode():
        return filled.predict_codes(torch.from_numpy(ref["in_face"]))


def test_state_dict_schema_is_the_reference(fixtures_dir):
    schema = json.loads((fixtures_dir / "restoration" / "restoration_schema.json").read_text())
    assert state_dict_schema() == {k: tuple(v) for k, v in schema["codeformer"].items()}


def test_codes_and_encoder_match_reference(codes, ref):
    assert np.array_equal(codes.logits.argmax(-1).numpy(), ref["codeformer_logits_argmax"])
    logits, want = _stats(codes.logits.numpy()), ref["codeformer_logits_stats"]
    np.testing.assert_allclose(logits[1:3], want[1:3], rtol=REL)
    np.testing.assert_allclose(logits[3:], want[3:], atol=1e-5)
    lq, want = _stats(codes.lq_feat.numpy()), ref["codeformer_lq_feat_stats"]
    np.testing.assert_allclose(lq[:3], want[:3], rtol=5 * REL)  # measured 1e-5
    np.testing.assert_allclose(lq[3:], want[3:], atol=1e-5)


def _check_output(out: np.ndarray, ref: dict, w: float) -> None:
    want = ref[f"codeformer_w{w:g}_out"]
    assert out.shape == (1, 3, 512, 512)
    diff = np.abs(out - want)
    assert diff.max() <= OUT_MAX[w] and diff.mean() <= OUT_MEAN
    assert np.corrcoef(out.ravel(), want.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(_stats(out)[1], ref[f"codeformer_w{w:g}_out_stats"][1], rtol=1e-3)


def test_fused_output_matches_reference(filled, codes, ref):
    with torch.inference_mode():
        out = filled.decode(codes, 0.5, adain=True).numpy()
    _check_output(out, ref, 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("w", [0.0, 1.0])
def test_other_fidelity_weights_match_reference(filled, codes, ref, w):
    with torch.inference_mode():
        out = filled.decode(codes, w, adain=True).numpy()
    _check_output(out, ref, w)


def test_official_layout_loads_strictly(filled, tmp_path):
    path = tmp_path / "codeformer.pth"
    torch.save({"params_ema": filled.state_dict()}, path)
    model = load_codeformer(path)
    for key in ("quantize.embedding.weight", "ft_layers.8.self_attn.in_proj_weight"):
        assert torch.equal(model.state_dict()[key], filled.state_dict()[key])


def test_wrong_shape_is_one_clear_line(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"params_ema": {"position_emb": torch.zeros(128, 512)}}, path)
    with pytest.raises(CheckpointError) as err:
        load_codeformer(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "position_emb: file [128, 512] vs expected [256, 512]" in msg
    assert "missing keys (encoder.blocks.0.bias" in msg
    assert "codeformer.pth" in msg and "NON-COMMERCIAL" in msg
