"""``avatarlab pose`` (default subcommand) and ``pose align`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from avatarlab.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def test_pose_extract_is_the_default_subcommand(data_dir: Path, tmp_path: Path) -> None:
    image = data_dir / "image" / "full_body.png"
    out = tmp_path / "pose"
    result = runner.invoke(
        app, ["pose", str(image), "-o", str(out), "--format", "coco", "--json"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["inputs"][0]["most_people"] == 1
    files = sorted((out / "json").glob("*_keypoints.json"))
    assert [f.name for f in files] == ["full_body_000000000000_keypoints.json"]
    person = json.loads(files[0].read_text())["people"][0]
    assert len(person["pose_keypoints_2d"]) == 18 * 3  # COCO-18
    # The same run spelt with the explicit subcommand name writes the same keypoints.
    again = tmp_path / "again"
    result = runner.invoke(
        app, ["pose", "extract", str(image), "-o", str(again), "--format", "coco"]
    )
    assert result.exit_code == 0, result.output
    assert (again / "json" / files[0].name).read_text() == files[0].read_text()


def test_pose_help_lists_choices_and_align_flags() -> None:
    result = runner.invoke(app, ["pose", "extract", "--help"], env=WIDE)
    assert result.exit_code == 0
    for choice in ("openpose", "dwpose", "coco", "skeleton", "overlay"):
        assert choice in result.output
    result = runner.invoke(app, ["pose", "align", "--help"], env=WIDE)
    assert result.exit_code == 0
    for flag in ("--reference", "--driving", "--align-frame"):
        assert flag in result.output


def test_pose_rejects_a_bad_choice(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pose", "x.jpg", "-o", str(tmp_path / "o"), "--format", "bvh"])
    assert result.exit_code == 2
    assert "bvh" in result.output
