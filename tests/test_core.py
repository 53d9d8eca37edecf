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


def test_listing_engines_and_building_the_cli_stay_light() -> None:
    """Engine options and every command's flags come without torch, OpenCV or the web stack."""
    code = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from avatarlab.engines import engine_options, list_engines\n"
        "from avatarlab.cli import app\n"
        "opts = {name: engine_options(name).__name__ for name in list_engines()}\n"
        "assert {'warp': 'WarpOptions', 'wav2lip': 'Wav2LipOptions'}.items() <= opts.items(), opts\n"
        "get_command(app)\n"
        "heavy = [m for m in ('torch', 'cv2', 'fastapi', 'mediapipe', 'av') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_public_api_exports_tasks_options_and_errors() -> None:
    import avatarlab
    from avatarlab import tasks
    from avatarlab.errors import OptionError

    assert avatarlab.speak is tasks.speak and avatarlab.evaluate is tasks.evaluate
    assert avatarlab.OptionError is OptionError
    for name in ("SpeakOptions", "DubOptions", "EvalOptions", "PrepareOptions", "CropOptions"):
        assert getattr(avatarlab, name) is getattr(tasks, name)
    assert avatarlab.ServeOptions().engine == "warp"
    assert {"warp", "wav2lip", "reenact"} <= set(avatarlab.list_engines())
    assert {"warp", "wav2lip"} <= set(avatarlab.list_engines("speech"))
    assert "reenact" in avatarlab.list_engines("motion")
    assert type(avatarlab.get_engine("warp")).__name__ == "WarpEngine"
