"""Tests of the shared core: errors, atomic outputs, checkpoint registry, CLI shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from avatarlab import weights
from avatarlab._util import atomic_output
from avatarlab.errors import MissingWeightsError, describe_frames


def test_describe_frames_compacts_runs() -> None:
    assert describe_frames([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert describe_frames([]) == "none"


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".txt"
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert target.stat().st_mode & 0o044, "outputs must be readable like any file, not 0600"


def test_missing_checkpoint_names_file_and_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path))
    ck = weights.register(
        weights.Checkpoint("test-dummy", "dummy.pth", "The dummy model", "https://example.org/d")
    )
    with pytest.raises(MissingWeightsError) as err:
        weights.resolve(ck.name)
    assert "dummy.pth" in str(err.value) and "https://example.org/d" in str(err.value)
    (tmp_path / "dummy.pth").write_bytes(b"x")
    assert weights.resolve(ck.name) == tmp_path / "dummy.pth"


def test_cli_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "avatarlab", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("avatarlab ")
