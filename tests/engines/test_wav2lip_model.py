"""Wav2Lip and SyncNet_color against the reference fixtures (fill-rule weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarlab.engines._fill import fill_state_dict, fill_values, filled_state_dict
from avatarlab.engines.wav2lip.model import (
    SyncNetColor,
    Wav2Lip,
    state_dict_schema,
    sync_probability,
)

TOL = 1e-4  # fixtures README: max abs diff


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "wav2lip_model.npz"))


@pytest.fixture(scope="module")
def generator():
    return fill_state_dict(Wav2Lip())


@pytest.fixture(scope="module")
def expert():
    return fill_state_dict(SyncNetColor())


def test_fill_rule_golden_values():
    bn = torch.nn.BatchNorm2d(3)
    filled = filled_state_dict(bn.state_dict())
    # sorted keys: bias(0), num_batches_tracked(1), running_mean(2), running_var(3), weight(4)
    np.testing.assert_allclose(filled["bias"].numpy(), [0.0, 0.0180807, 0.0337145], atol=1e-6)
    assert filled["num_batches_tracked"].dtype == torch.int64
    assert int(filled["num_batches_tracked"]) == 0
    # k=3: 1 + 0.1 * |0.05 sin(3.9 + 0.37 i)|
    np.testing.assert_allclose(
        filled["running_var"].numpy(), [1.0034389, 1.0045187, 1.0049869], atol=1e-6
    )
    assert fill_values(4, (2, 2)).shape == (2, 2)


@pytest.mark.parametrize(("name", "cls"), [("Wav2Lip", Wav2Lip), ("SyncNet_color", SyncNetColor)])
def test_state_dict_schema_is_the_reference(fixtures_dir, name, cls):
    expected = json.loads((fixtures_dir / "wav2lip_schema.json").read_text())[name]
    assert state_dict_schema(cls) == {k: tuple(v) for k, v in expected.items()}


def test_generator_matches_reference(generator, ref):
    with torch.no_grad():
        out = generator(torch.from_numpy(ref["gen_audio_in"]), torch.from_numpy(ref["gen_face_in"]))
    assert out.shape == (2, 3, 96, 96)
    assert np.abs(out.numpy() - ref["gen_out"]).max() <= TOL


def test_generator_sequence_input_equals_per_frame(generator, ref):
    audio = torch.from_numpy(ref["gen_audio_in"])  # two items become T=2 steps of one clip
    faces = torch.from_numpy(ref["gen_face_in"])
    with torch.no_grad():
        seq = generator(audio.unsqueeze(0), faces.permute(1, 0, 2, 3).unsqueeze(0))
    assert seq.shape == (1, 3, 2, 96, 96)
    np.testing.assert_allclose(seq[0].permute(1, 0, 2, 3).numpy(), ref["gen_out"], atol=TOL)


def test_expert_matches_reference(expert, ref):
    with torch.no_grad():
        a, v = expert(torch.from_numpy(ref["sync_audio_in"]), torch.from_numpy(ref["sync_face_in"]))
    assert np.abs(a.numpy() - ref["sync_audio_emb"]).max() <= TOL
    assert np.abs(v.numpy() - ref["sync_face_emb"]).max() <= TOL
    p = sync_probability(a, v).numpy()
    expected = (ref["sync_audio_emb"] * ref["sync_face_emb"]).sum(1)  # unit vectors: dot = cos
    np.testing.assert_allclose(p, expected, atol=TOL)
