"""What an evaluation imports: MediaPipe comes in without matplotlib (start-up time).

Each check runs in a fresh interpreter, since the point is what a new process loads.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("mediapipe")


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_face_mesh_import_leaves_matplotlib_unimported() -> None:
    out = _run(
        "import sys\n"
        "from avatarlab.face import models\n"
        "fm = models.import_mediapipe_solution('face_mesh')\n"
        "print(fm.FaceMesh.__name__, 'mediapipe' in sys.modules,"
        " any(k.split('.')[0] == 'matplotlib' for k in sys.modules))\n"
    )
    assert out == "FaceMesh True False"


def test_drawing_utils_still_reach_real_pyplot() -> None:
    pytest.importorskip("matplotlib")
    out = _run(
        "from avatarlab.face import models\n"
        "models.import_mediapipe_solution('face_mesh')\n"
        "from mediapipe.python.solutions import drawing_utils as du\n"
        "import matplotlib.pyplot as plt\n"
        "print(du.plt.figure is plt.figure, type(plt).__name__)\n"
    )
    assert out == "True module"


def test_matplotlib_already_imported_is_left_alone() -> None:
    pytest.importorskip("matplotlib")
    out = _run(
        "import matplotlib.pyplot as plt\n"
        "from avatarlab.face import models\n"
        "models.import_mediapipe_solution('face_mesh')\n"
        "from mediapipe.python.solutions import drawing_utils as du\n"
        "print(du.plt is plt)\n"
    )
    assert out == "True"
