"""Loading Wav2Lip checkpoints in the official layout, and clear errors for wrong files."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avatarlab import weights
from avatarlab.cli import app
from avatarlab.engines._fill import fill_state_dict
from avatarlab.engines.wav2lip import load_syncnet_color, load_wav2lip
from avatarlab.engines.wav2lip.checkpoints import WAV2LIP_SOURCE
from avatarlab.engines.wav2lip.model import SyncNetColor, Wav2Lip
from avatarlab.errors import CheckpointError, MissingWeightsError


def _official_container(model: torch.nn.Module) -> dict:
    """What the reference training scripts save from a DataParallel-wrapped model."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4).state_dict()
    return {"state_dict": state, "optimizer": optimizer, "global_step": 3000, "global_epoch": 2}


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    """A fill-rule generator saved in the layout of ``wav2lip.pth``."""
    path = tmp_path_factory.mktemp("ckpt") / "wav2lip.pth"
    torch.save(_official_container(fill_state_dict(Wav2Lip())), path)
    return path


@pytest.fixture(scope="module")
def expert_state():
    return fill_state_dict(SyncNetColor()).state_dict()


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "wav2lip_model.npz"))


def test_official_layout_loads_and_reproduces_reference(generator_file, ref):
    model = load_wav2lip(generator_file)
    assert not model.training
    with torch.no_grad():
        out = model(torch.from_numpy(ref["gen_audio_in"]), torch.from_numpy(ref["gen_face_in"]))
    assert np.abs(out.numpy() - ref["gen_out"]).max() <= 1e-4


def test_plain_state_dict_loads(tmp_path, expert_state, ref):
    path = tmp_path / "expert.pt"
    # No container, no prefix, and the pre-1.6 serialisation the 2020 checkpoints use.
    torch.save(expert_state, path, _use_new_zipfile_serialization=False)
    model = load_syncnet_color(path)
    with torch.no_grad():
        a, v = model(torch.from_numpy(ref["sync_audio_in"]), torch.from_numpy(ref["sync_face_in"]))
    assert np.abs(a.numpy() - ref["sync_audio_emb"]).max() <= 1e-4
    assert np.abs(v.numpy() - ref["sync_face_emb"]).max() <= 1e-4


def test_wrong_key_and_shape_fail_clearly(tmp_path, expert_state):
    state = dict(expert_state)
    state["audio_encoder.0.conv_block.0.weght"] = state.pop("audio_encoder.0.conv_block.0.weight")
    state["face_encoder.0.conv_block.0.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_syncnet_color(path)
    msg = str(err.value)
    assert "1 missing keys (audio_encoder.0.conv_block.0.weight)" in msg
    assert "1 unexpected keys (audio_encoder.0.conv_block.0.weght)" in msg
    assert "face_encoder.0.conv_block.0.bias: file [7] vs expected [32]" in msg
    assert "'lipsync_expert.pth'" in msg and WAV2LIP_SOURCE in msg


def test_expert_file_given_as_generator_is_recognised(tmp_path, expert_state):
    path = tmp_path / "lipsync_expert.pth"
    torch.save({"state_dict": expert_state}, path)
    with pytest.raises(CheckpointError) as err:
        load_wav2lip(path)
    msg = str(err.value)
    assert "looks like 'lipsync_expert.pth'" in msg
    assert "Use the official 'wav2lip.pth' or 'wav2lip_gan.pth'" in msg


def test_missing_file_names_expected_file_and_source(tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError) as err:
        load_wav2lip(tmp_path / "nope.pth")
    assert "'wav2lip.pth'" in str(err.value) and WAV2LIP_SOURCE in str(err.value)
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="lipsync_expert.pth"):
        load_syncnet_color()


def test_pickled_objects_need_trust(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError, match="trusted=True"):
        weights.read_state_dict(path)
    assert list(weights.read_state_dict(path, trusted=True)) == ["w"]


def test_check_file_identifies_by_layout(generator_file, tmp_path):
    report = weights.check_file(generator_file)
    assert report.ok and report.method == "layout"
    assert report.matches == ("wav2lip", "wav2lip_gan")
    wrong = weights.check_file(generator_file, "lipsync_expert")
    assert not wrong.ok
    assert any("fits 'wav2lip.pth' or 'wav2lip_gan.pth' instead" in p for p in wrong.problems)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint" * 10)
    assert "not a readable PyTorch checkpoint" in weights.check_file(junk).problems[0]


def test_models_cli(generator_file):
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0
    for name in ("wav2lip.pth", "wav2lip_gan.pth", "lipsync_expert.pth"):
        assert name in listed.output
    ok = runner.invoke(app, ["models", "verify", str(generator_file)])
    assert ok.exit_code == 0, ok.output
    assert "matches: wav2lip, wav2lip_gan (by layout)" in ok.output
    bad = runner.invoke(app, ["models", "verify", str(generator_file), "--name", "lipsync_expert"])
    assert bad.exit_code == 1 and "MISMATCH" in bad.output
