"""Flags generated from the options dataclasses, and the exit codes and leftovers of issue 17."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.errors import OptionError
from avatarlab.media import probe, write_video

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def _run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """The real entry point (with its error handling), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "avatarlab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_option_the_engine_lacks_is_one_line(tmp_path: Path) -> None:
    res = _run("speak", "--engine", "wav2lip", "--head-motion", "0.3", "--image", "x.jpg",
               "--text", "hi", "-o", str(tmp_path / "o.mp4"))  # fmt: skip
    assert res.returncode == 2
    line = _one_error_line(res.stderr)
    assert "'wav2lip' has no option head_motion" in line
    assert "checkpoint, device, batch_size, pads, blend, feather, still_fps, max_gap" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["speak", "dub"])
def test_help_lists_choices_and_defaults(command: str) -> None:
    shown = runner.invoke(app, [command, "--help"], env=WIDE)
    assert shown.exit_code == 0
    text = " ".join(shown.output.split())
    for choices in ("warp|wav2lip", "auto|source|synthetic", "pingpong|loop", "lower|box"):
        assert choices in text, choices
    for flag in ("--crf", "--head-motion", "--checkpoint", "--pads", "--still-fps", "--config"):
        assert flag in text, flag
    assert "default: 18" in text and "default: 0 10 0 0" in text
    assert "engine wav2lip" in text  # options only some engines have say which


def test_every_command_builds_its_flags_from_options() -> None:
    expected = {
        ("crop",): ["--size", "--margin", "--every", "--all-faces", "--format", "--min-score"],
        ("prepare",): ["--preset", "--size", "--max-yaw", "--retry-failed", "--executor"],
        ("train", "syncnet"): ["--steps", "--lr", "--keep-checkpoints", "--val-split", "--overfit"],
        ("train", "wav2lip"): ["--steps", "--expert", "--gan", "--syncnet-wt", "--lse-frames"],
        ("serve",): ["--avatar", "--max-side", "--allow-host", "--engine", "--head-motion"],
        ("eval",): ["--metrics", "--weights", "--option", "--jobs", "--max-plots"],
    }
    for command, flags in expected.items():
        shown = runner.invoke(app, [*command, "--help"], env=WIDE)
        assert shown.exit_code == 0, command
        for flag in [*flags, "--config"]:
            assert flag in shown.output, (command, flag)


def test_config_file_sets_options_and_flags_override_it(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "crop.toml"
    config.write_text('size = 64\nimage_format = "png"\n')
    image = str(data_dir / "image" / "man_green.jpg")
    res = runner.invoke(
        app, ["crop", image, "-o", str(tmp_path / "c"), "--config", str(config), "--size", "80"]
    )
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "c" / "report.json").read_text())["written"]
    assert len(written) == 1 and written[0].endswith(".png")
    crop = probe(written[0])
    assert (crop.width, crop.height) == (80, 80)
    config.write_text("sise = 64\n")
    bad = runner.invoke(app, ["crop", image, "-o", str(tmp_path / "d"), "--config", str(config)])
    assert isinstance(bad.exception, OptionError) and "unknown option sise" in str(bad.exception)
    assert not (tmp_path / "d").exists()


def test_speak_refuses_fps_for_a_video_and_checks_crf_first(data_dir: Path, tmp_path: Path) -> None:
    video = str(data_dir / "video" / "talk_c.mp4")
    out = tmp_path / "o.mp4"
    res = _run("speak", "--image", video, "--fps", "30", "--text", "hi", "-o", str(out))
    assert res.returncode == 2
    line = _one_error_line(res.stderr)
    assert "fps only apply to still portraits" in line and "own frame rate (25 fps)" in line
    # the crf range is checked before anything else (here: before the missing image)
    res = _run("speak", "--image", str(tmp_path / "none.jpg"), "--crf", "60", "--text", "hi",
               "-o", str(out))  # fmt: skip
    assert res.returncode == 2 and "crf must be in 0..51" in _one_error_line(res.stderr)
    assert list(tmp_path.iterdir()) == []


def test_crop_exit_codes_and_outputs(data_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _run("crop", str(empty), "-o", str(tmp_path / "c"))
    assert res.returncode == 2 and "no images or videos found" in _one_error_line(res.stderr)
    assert not (tmp_path / "c").exists()
    image = str(data_dir / "image" / "man_green.jpg")
    taken = tmp_path / "taken.txt"
    taken.write_text("x")
    for out in (taken, taken / "below"):
        res = _run("crop", image, "-o", str(out))
        assert res.returncode == 2, res.stderr
        assert "is a file" in _one_error_line(res.stderr) or "not a folder" in res.stderr
    assert taken.read_text() == "x"


def test_crop_carries_on_past_unexpected_errors(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from avatarlab.tasks import faces

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(data_dir / "image" / "man_green.jpg", src / name)
    real = faces._frames_of

    def flaky(path: Path, every: int):  # type: ignore[no-untyped-def]
        if path.name == "a.jpg":
            raise RuntimeError("decoder exploded")
        return real(path, every)

    monkeypatch.setattr(faces, "_frames_of", flaky)
    res = runner.invoke(app, ["crop", str(src), "-o", str(tmp_path / "c"), "--size", "64"])
    assert res.exit_code == 1  # a failure was recorded, the other file still cropped
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert [Path(p).name for p in report["written"]] == ["b.jpg"]
    assert report["failed"] == {str(src / "a.jpg"): "RuntimeError: decoder exploded"}


def test_faces_leaves_no_json_when_the_preview_cannot_be_written(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = str(data_dir / "image" / "woman_photo.jpg")
    blocked = tmp_path / "file.txt"
    blocked.write_text("x")
    res = _run("faces", image, "-o", str(tmp_path / "f.json"), "--annotate", str(blocked / "a.png"))
    assert res.returncode == 2 and "cannot write" in _one_error_line(res.stderr)
    assert not (tmp_path / "f.json").exists()

    import avatarlab.media.files as files

    def full_disk(path: object, image: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "write_image", full_disk)
    out = runner.invoke(
        app, ["faces", image, "-o", str(tmp_path / "g.json"), "--annotate", str(tmp_path / "a.png")]
    )
    assert out.exit_code != 0 and isinstance(out.exception, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # no JSON, no temp file


def test_eval_fails_when_no_metric_scored(tmp_path: Path) -> None:
    clip = tmp_path / "pred.mp4"
    write_video(clip, np.full((8, 64, 64, 3), 100, np.uint8), 25.0)
    env = {**os.environ, "AVATARLAB_WEIGHTS": str(tmp_path / "no-weights")}
    res = _run("eval", "--pred", str(clip), "--metrics", "lse", "-j", "1", "-o",
               str(tmp_path / "r"), env=env)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "no metric produced a score" in res.stderr and "lse" in res.stderr
    assert "Traceback" not in res.stderr


def test_prepare_fails_when_every_clip_failed(tmp_path: Path) -> None:
    src = tmp_path / "corpus"
    src.mkdir()
    (src / "broken.mp4").write_bytes(b"not a video" * 100)
    res = _run("prepare", str(src), "-o", str(tmp_path / "out"), "--workers", "1")
    assert res.returncode == 1, res.stderr
    assert "1 failed" in res.stderr and "every clip failed" in res.stderr


def test_json_listings() -> None:
    models = runner.invoke(app, ["models", "list", "--json"])
    assert models.exit_code == 0
    names = {row["name"] for row in json.loads(models.stdout)["checkpoints"]}
    assert {"wav2lip", "lipsync_expert"} <= names
    cards = json.loads(runner.invoke(app, ["datasets", "list", "--json"]).stdout)
    assert any(card["name"] == "LRS3" for card in cards)
    lrs3 = json.loads(runner.invoke(app, ["datasets", "show", "lrs3", "--json"]).stdout)
    assert lrs3["name"] == "LRS3" and lrs3["year"] == 2018


def test_sigterm_stops_speak_like_ctrl_c(data_dir: Path, tmp_path: Path) -> None:
    image = str(data_dir / "image" / "woman_photo.jpg")
    text = "This sentence keeps the avatar talking for quite a while. " * 20
    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarlab", "speak", "--image", image, "--text", text,
         "-o", str(tmp_path / "long.mp4")],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".long.*")):  # the writer's temporary file: frames are flowing
        assert proc.poll() is None and time.monotonic() < deadline, "speak ended early"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in stderr, stderr
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file
