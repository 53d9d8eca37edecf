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


CLI_SCRIPT = """
import sys
from avatarlab._util import silence_native_stderr
from avatarlab.face.models import quiet_native
silence_native_stderr()  # what the CLI does first
with quiet_native():
    print("inside the quiet block", file=sys.stderr)
print("after the quiet block", file=sys.stderr)
"""

API_SCRIPT = """
import os, sys
from avatarlab.face.models import quiet_native
with quiet_native():
    print("python inside", file=sys.stderr)
    os.write(2, b"native inside\\n")
    replaced = sys.stderr = open(os.devnull, "w")  # someone swaps stderr meanwhile
assert sys.stderr is replaced  # left as they set it
sys.stderr = sys.__stderr__
print("python after", file=sys.stderr)
"""


def test_python_stderr_stays_visible_inside_quiet_blocks() -> None:
    for script, shown, hidden in (
        (CLI_SCRIPT, ["inside the quiet block", "after the quiet block"], []),
        (API_SCRIPT, ["python inside", "python after"], ["native inside"]),
    ):
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        lines = run.stderr.splitlines()
        assert all(s in lines for s in shown) and not any(h in lines for h in hidden), lines
