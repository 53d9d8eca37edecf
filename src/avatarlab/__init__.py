"""avatarlab: talking avatars in one toolkit.

Analyse faces and speech, make a portrait or a video speak, stream it live,
prepare the field's datasets, and evaluate results with the field's metrics.
Every function here is a task of :mod:`avatarlab.tasks`; names are imported on
first use, so ``import avatarlab`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from avatarlab._lazy import lazy_exports
from avatarlab._version import __version__
from avatarlab.errors import (
    AvatarLabError,
    CheckpointError,
    MediaError,
    MissingWeightsError,
    NoAudioError,
    NoFaceError,
    NoPersonError,
    NoVideoError,
    OptionError,
)

if TYPE_CHECKING:
    from avatarlab.engines import get_engine, list_engines
    from avatarlab.serve import ServeOptions
    from avatarlab.tasks.enhance import EnhanceOptions, enhance
    from avatarlab.tasks.evaluate import EvalOptions, evaluate
    from avatarlab.tasks.faces import CropOptions, crop_faces
    from avatarlab.tasks.pose import PoseAlignOptions, PoseOptions, pose, pose_align
    from avatarlab.tasks.postprocess import PostOptions
    from avatarlab.tasks.prepare import PrepareOptions, PrepareRun, prepare
    from avatarlab.tasks.reenact import ReenactOptions, reenact
    from avatarlab.tasks.speak import DubOptions, SpeakOptions, dub, speak


def serve(options: ServeOptions | None = None, log_level: str = "info", **fields: Any) -> None:
    """Run the live talking-avatar server until interrupted (page, HTTP API, WebRTC).

    ``serve(avatars=("me.jpg",), port=8010, engine="warp")`` or
    ``serve(ServeOptions(...))``; keyword ``fields`` override ``options``. Listens on
    127.0.0.1 unless ``host`` says otherwise.
    """
    from dataclasses import replace

    from avatarlab.serve import ServeOptions
    from avatarlab.serve import serve as run

    run(replace(options or ServeOptions(), **fields), log_level=log_level)


# The public API, imported on first use so `import avatarlab` stays light.
_LAZY = {
    "speak": "avatarlab.tasks",
    "dub": "avatarlab.tasks",
    "evaluate": "avatarlab.tasks",
    "prepare": "avatarlab.tasks",
    "crop_faces": "avatarlab.tasks",
    "SpeakOptions": "avatarlab.tasks",
    "DubOptions": "avatarlab.tasks",
    "EvalOptions": "avatarlab.tasks",
    "PrepareOptions": "avatarlab.tasks",
    "PrepareRun": "avatarlab.tasks",
    "CropOptions": "avatarlab.tasks",
    "pose": "avatarlab.tasks",
    "enhance": "avatarlab.tasks",
    "EnhanceOptions": "avatarlab.tasks",
    "PostOptions": "avatarlab.tasks",
    "reenact": "avatarlab.tasks",
    "ReenactOptions": "avatarlab.tasks",
    "pose_align": "avatarlab.tasks",
    "PoseOptions": "avatarlab.tasks",
    "PoseAlignOptions": "avatarlab.tasks",
    "ServeOptions": "avatarlab.serve.options",
    "list_engines": "avatarlab.engines",
    "get_engine": "avatarlab.engines",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AvatarLabError",
    "CheckpointError",
    "CropOptions",
    "DubOptions",
    "EnhanceOptions",
    "EvalOptions",
    "MediaError",
    "MissingWeightsError",
    "NoAudioError",
    "NoFaceError",
    "NoPersonError",
    "PoseAlignOptions",
    "PoseOptions",
    "PostOptions",
    "NoVideoError",
    "OptionError",
    "PrepareOptions",
    "PrepareRun",
    "ReenactOptions",
    "ServeOptions",
    "SpeakOptions",
    "__version__",
    "crop_faces",
    "dub",
    "enhance",
    "evaluate",
    "get_engine",
    "list_engines",
    "pose",
    "pose_align",
    "prepare",
    "reenact",
    "serve",
    "speak",
]
