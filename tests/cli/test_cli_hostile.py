"""Issue 17 on the command line: hostile pictures, wordless text, eval notes — one line each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avatarlab.media import write_video
from tests.media._media_helpers import huge_png


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarlab", *args], capture_output=True, text=True, timeout=300
    )


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return huge_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 16000, 16000)


@pytest.mark.parametrize(
    "command",
    [
        ("info", "{bomb}"),
        ("faces", "{bomb}", "-o", "{tmp}/f.json"),
        ("speak", "--image", "{bomb}", "--text", "hello", "-o", "{tmp}/s.mp4"),
    ],
    ids=["info", "faces", "speak"],
)
def test_a_huge_picture_is_one_line(bomb: Path, tmp_path: Path, command: tuple[str, ...]) -> None:
    args = [a.format(bomb=bomb, tmp=tmp_path) for a in command]
    res = _run(*args)
    assert res.returncode == 2, res.stderr
    line = _one_error_line(res.stderr)
    assert "256 megapixels" in line and "at most 50 megapixels" in line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_crop_records_a_huge_picture_and_crops_the_others(
    bomb: Path, data_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(bomb, src / "bomb.png")
    shutil.copy(data_dir / "image" / "anime_girl.jpg", src / "face.jpg")
    out = tmp_path / "out"
    res = _run("crop", str(src), "-o", str(out), "--size", "128")
    assert res.returncode == 1, res.stderr  # a file failed, say so
    assert "Traceback" not in res.stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["written"]) == 1
    assert any("megapixels" in why for why in report["failed"].values())


def test_wordless_text_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    image = data_dir / "image" / "anime_girl.jpg"
    res = _run("speak", "--image", str(image), "--text", "?! ...", "-o", str(tmp_path / "o.mp4"))
    assert res.returncode == 2, res.stderr
    assert "no words to speak" in _one_error_line(res.stderr)
    assert not (tmp_path / "o.mp4").exists()


def test_eval_prints_length_notes_and_the_psnr_hint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    pred = ref[:6].copy()
    pred[1:] = np.clip(pred[1:].astype(int) + 9, 0, 255).astype(np.uint8)  # frame 0 identical
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    write_video(tmp_path / "p" / "a.mp4", pred, 25.0, crf=0)
    write_video(tmp_path / "r" / "a.mp4", ref, 25.0, crf=0)
    res = _run(
        "eval", "--pred", str(tmp_path / "p"), "--ref", str(tmp_path / "r"),
        "--metrics", "psnr", "-j", "1", "-o", str(tmp_path / "out"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stderr.split())
    assert "note: a: the reference's last 4 frames lie past the prediction's end" in text
    assert "psnr is +inf because 1 frames equal the reference exactly" in text
