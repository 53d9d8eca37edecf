"""``avatarlab reenact`` on the command line: generated flags, --absolute, JSON, engine checks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.media import iter_frames, probe, write_video

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def test_reenact_writes_one_frame_per_driving_frame(data_dir: Path, tmp_path: Path) -> None:
    clip = data_dir / "video" / "expressions_silent.mp4"
    frames = [f for f, _ in itertools.islice(iter_frames(clip), 0, 16, 2)]
    drive = tmp_path / "drive.mp4"
    write_video(drive, frames, fps=12.5)
    source = data_dir / "image" / "anime_girl.jpg"
    out = tmp_path / "out.mp4"
    args = ["reenact", "--source", str(source), "--driving", str(drive), "-o", str(out)]
    result = runner.invoke(app, [*args, "--absolute", "--region", "expression", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    info = probe(out)
    assert report["frames"] == info.n_frames == len(frames)
    assert info.fps == 12.5
    src = probe(source)
    assert (info.width, info.height) == (src.width, src.height)


def test_reenact_help_lists_choices_and_the_switch() -> None:
    result = runner.invoke(app, ["reenact", "--help"], env=WIDE)
    assert result.exit_code == 0
    for text in ("--relative", "--absolute", "expression", "lips", "--max-angle", "--lips-still"):
        assert text in result.output


def test_speech_engines_are_not_offered_to_reenact_nor_motion_engines_to_speak(
    tmp_path: Path,
) -> None:
    result = runner.invoke(
        app,
        ["reenact", "--source", "a.jpg", "--driving", "b.mp4", "-o", "o.mp4", "--engine", "warp"],
    )
    assert result.exit_code == 2 and "warp" in result.output
    result = runner.invoke(
        app, ["speak", "--image", "a.jpg", "--text", "hi", "-o", "o.mp4", "--engine", "reenact"]
    )
    assert result.exit_code == 2 and "reenact" in result.output
