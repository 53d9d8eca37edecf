"""MediaPipe's native log lines stay off the console in the Python API (not only in the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os, sys, warnings
from avatarlab.face import FaceTracker, face_mesh
from avatarlab.media import read_image
image = read_image(sys.argv[1])
assert face_mesh(image) is not None
with FaceTracker() as tracker:
    tracker.track([(image, i / 25) for i in range(3)])
print("python stderr", file=sys.stderr)
warnings.warn("python warning")
os.write(2, b"native after\\n")
"""


def test_api_hides_native_logs_and_keeps_python_stderr(data_dir: Path) -> None:
    image = data_dir / "image" / "anime_girl.jpg"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(image)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert not [line for line in lines if "TensorFlow Lite" in line or "W0000" in line], lines
    assert "python stderr" in lines and "native after" in lines
    assert any("python warning" in line for line in lines)
