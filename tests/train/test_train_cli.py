"""``avatarlab train syncnet|wav2lip``: flags reach the options, runs resume, mistakes are clear."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.errors import OptionError

pytestmark = pytest.mark.slow

FAST = ["--batch-size", "2", "--eval-every", "0", "--num-workers", "0", "--device", "cpu"]


def test_train_syncnet_runs_refuses_to_overwrite_and_resumes(prepared: Path, tmp_path: Path):
    run = tmp_path / "run"
    runner = CliRunner()
    args = ["train", "syncnet", "--data", str(prepared), "-o", str(run), *FAST]
    first = runner.invoke(app, [*args, "--steps", "1", "--seed", "3", "--lr", "0.001"])
    assert first.exit_code == 0, first.output
    assert "syncnet: steps 0 -> 1" in first.output
    saved = json.loads((run / "options.json").read_text())
    assert (saved["steps"], saved["seed"], saved["lr"], saved["batch_size"]) == (1, 3, 0.001, 2)
    assert saved["recipe"] == "syncnet" and saved["data"] == str(prepared)

    again = runner.invoke(app, [*args, "--steps", "2"])
    assert isinstance(again.exception, OptionError)
    assert "already holds a training run" in str(again.exception)

    resumed = runner.invoke(app, [*args, "--steps", "2", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert "syncnet: steps 1 -> 2" in resumed.output
    steps = [r["step"] for r in csv.DictReader((run / "metrics.csv").open())]
    assert steps == ["1", "2"]


def test_train_wav2lip_needs_an_expert(prepared: Path, tmp_path: Path):
    out = CliRunner().invoke(
        app, ["train", "wav2lip", "--data", str(prepared), "-o", str(tmp_path / "g"), *FAST]
    )
    assert isinstance(out.exception, OptionError)
    assert "--expert lipsync_expert.pth" in str(out.exception)
    assert not (tmp_path / "g").exists()
