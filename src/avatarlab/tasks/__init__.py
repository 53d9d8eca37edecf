"""The tasks layer: whole jobs built from the building blocks (speak, dub, eval, ...).

The public API (:mod:`avatarlab`), the command line and the server call only this
layer; building blocks (media, face, speech, engines, metrics, datasets, train)
never import it. Each task takes a frozen options dataclass whose fields are also
its command-line flags. The task modules import their heavy dependencies when a
task runs, so importing this package stays light.

    from avatarlab.tasks import speak, SpeakOptions
"""

from __future__ import annotations

from avatarlab.tasks.demo import DemoOutputs, run_demo
from avatarlab.tasks.enhance import EnhanceOptions, EnhanceResult, enhance
from avatarlab.tasks.evaluate import EvalOptions, evaluate, nothing_scored
from avatarlab.tasks.faces import (
    CropOptions,
    CropReport,
    FacesResult,
    MediaSummary,
    analyze_faces,
    crop_faces,
    summarize_media,
)
from avatarlab.tasks.models import FetchOptions, fetch, list_checkpoints, verify_checkpoint
from avatarlab.tasks.pose import (
    AlignResult,
    PoseAlignOptions,
    PoseOptions,
    PoseResult,
    pose,
    pose_align,
)
from avatarlab.tasks.postprocess import BackgroundOptions, PostOptions
from avatarlab.tasks.prepare import PrepareOptions, PrepareRun, prepare
from avatarlab.tasks.reenact import ReenactOptions, ReenactResult, reenact
from avatarlab.tasks.speak import DubOptions, GenerateResult, SpeakOptions, dub, speak

__all__ = [
    "BackgroundOptions",
    "PostOptions",
    "EnhanceOptions",
    "EnhanceResult",
    "FetchOptions",
    "enhance",
    "fetch",
    "list_checkpoints",
    "verify_checkpoint",
    "ReenactOptions",
    "ReenactResult",
    "reenact",
    "AlignResult",
    "PoseAlignOptions",
    "PoseOptions",
    "PoseResult",
    "pose",
    "pose_align",
    "CropOptions",
    "CropReport",
    "DemoOutputs",
    "DubOptions",
    "EvalOptions",
    "FacesResult",
    "GenerateResult",
    "MediaSummary",
    "PrepareOptions",
    "PrepareRun",
    "SpeakOptions",
    "analyze_faces",
    "crop_faces",
    "dub",
    "evaluate",
    "nothing_scored",
    "prepare",
    "run_demo",
    "speak",
    "summarize_media",
]
