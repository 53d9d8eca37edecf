"""The main job on built-in defaults (``make demo`` / ``avatarlab demo``).

Analyses the bundled portrait (annotated picture + JSON of faces) and makes it
speak the default sentence with the default engine, writing everything under
one output folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarlab._util import make_output_folder
from avatarlab.assets import DEFAULT_SENTENCE, DEFAULT_VOICE, default_portrait


@dataclass(frozen=True)
class DemoOutputs:
    """Files the demo wrote."""

    portrait: Path
    annotated: Path
    faces_json: Path
    video: Path


def run_demo(out_dir: str | os.PathLike[str], text: str = DEFAULT_SENTENCE) -> DemoOutputs:
    """Write the default portrait, its face analysis and a talking video into ``out_dir``."""
    from avatarlab.media.files import write_image
    from avatarlab.tasks.faces import analyze_faces

    out = make_output_folder(out_dir)
    portrait = default_portrait()
    write_image(out / "portrait.png", portrait)
    analyze_faces(out / "portrait.png", out / "portrait_faces.json", out / "portrait_annotated.png")
    video = _speak(portrait, out / "talking.mp4", text)
    return DemoOutputs(
        portrait=out / "portrait.png",
        annotated=out / "portrait_annotated.png",
        faces_json=out / "portrait_faces.json",
        video=video,
    )


def _speak(portrait: np.ndarray, target: Path, text: str) -> Path:
    """Make the portrait say ``text`` with the default engine."""
    from avatarlab.tasks.speak import SpeakOptions, speak

    return speak(portrait, text=text, out=target, options=SpeakOptions(voice=DEFAULT_VOICE)).path
