"""The published LivePortrait (human model) checkpoints and their strict loaders.

Files: the ``liveportrait/`` folder of the KwaiVGI/LivePortrait HuggingFace repository
(``base_models/{appearance_feature_extractor,motion_extractor,warping_module,
spade_generator}.pth`` and ``retargeting_models/stitching_retargeting_module.pth``), the
files the GitHub README tells users to download. The four base models are plain state
dicts; the stitching file is ``{"retarget_shoulder": ..., "retarget_mouth": ...,
"retarget_eye": ...}`` with ``module.``-prefixed keys (read as the reference's
``src/utils/helper.py`` ``load_model`` reads it). KwaiVGI publishes no checksums or sizes
outside the HuggingFace file pages, so none are registered here.

Licence: LivePortrait's code and these weights are MIT (KwaiVGI). The reference pipeline
also downloads InsightFace's ``buffalo_l`` detector (InsightFace models: non-commercial
research use only) and a 203-point ``landmark.onnx``; avatarlab uses NEITHER: faces come
from :mod:`avatarlab.face` (MediaPipe, dlib).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatarlab.errors import CheckpointError
from avatarlab.weights import (
    Checkpoint,
    compare_layout,
    get_checkpoint,
    load_into,
    register,
    register_architecture,
    resolve,
)

if TYPE_CHECKING:
    import torch

HF_FILES = "https://huggingface.co/KwaiVGI/LivePortrait/resolve/main/liveportrait"
LICENCE = "MIT; InsightFace detector parts of the reference are not used"

BASE_PARTS = (
    "appearance_feature_extractor",
    "motion_extractor",
    "warping_module",
    "spade_generator",
)
"""The four base networks; each is ``<part>.pth`` and registered as ``liveportrait_<part>``."""

STITCHING_KEYS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}
"""Our MLP name -> its key in ``stitching_retargeting_module.pth``."""

_DESCRIPTIONS = {
    "appearance_feature_extractor": "LivePortrait appearance feature extractor (F)",
    "motion_extractor": "LivePortrait motion extractor (M, ConvNeXt-V2 tiny)",
    "warping_module": "LivePortrait warping module (W, dense motion + occlusion)",
    "spade_generator": "LivePortrait SPADE generator (G, 256 -> 512)",
}


def _part_schema(part: str) -> Any:
    def schema() -> dict[str, tuple[int, ...]]:
        from avatarlab.engines.liveportrait.networks import state_dict_schema

        return state_dict_schema(part)

    return schema


def _stitching_schema() -> dict[str, tuple[int, ...]]:
    """The stitching file's three MLPs flattened as ``<file key>.<param>``."""
    from avatarlab.engines.liveportrait.networks import state_dict_schema

    return {
        f"{key}.{param}": shape
        for ours, key in STITCHING_KEYS.items()
        for param, shape in state_dict_schema(ours).items()
    }


CHECKPOINTS: dict[str, Checkpoint] = {}
for _part in BASE_PARTS:
    register_architecture(f"liveportrait.{_part}", _part_schema(_part))
    CHECKPOINTS[_part] = register(
        Checkpoint(
            f"liveportrait_{_part}",
            f"{_part}.pth",
            _DESCRIPTIONS[_part],
            f"{HF_FILES}/base_models/{_part}.pth",
            architecture=f"liveportrait.{_part}",
            license=LICENCE,
        )
    )
register_architecture("liveportrait.stitching_retargeting_module", _stitching_schema)
CHECKPOINTS["stitching_retargeting_module"] = register(
    Checkpoint(
        "liveportrait_stitching_retargeting",
        "stitching_retargeting_module.pth",
        "LivePortrait stitching and eye/lip retargeting MLPs",
        f"{HF_FILES}/retargeting_models/stitching_retargeting_module.pth",
        architecture="liveportrait.stitching_retargeting_module",
        license=LICENCE,
    )
)

_SUBFOLDERS = (
    "",
    "base_models",
    "retargeting_models",
    "liveportrait/base_models",
    "liveportrait/retargeting_models",
)


def find_file(part: str, folder: str | os.PathLike[str] | None) -> Path:
    """The file of ``part`` in ``folder`` (or the cache), also in the HuggingFace layout.

    ``folder`` may hold the files directly or as downloaded (``base_models/``,
    ``retargeting_models/``, optionally under ``liveportrait/``).

    Raises:
        MissingWeightsError: naming the file and its official source.
    """
    ckpt = CHECKPOINTS[part]
    if folder is not None and Path(folder).is_dir():
        for sub in _SUBFOLDERS:
            cand = Path(folder) / sub / ckpt.filename
            if cand.is_file():
                return cand
    return resolve(ckpt.name, folder)


def load_part(
    part: str, folder: str | os.PathLike[str] | None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """One base network with the weights of its official file (strict keys and shapes)."""
    from avatarlab.engines.liveportrait.networks import build

    return load_into(build(part), CHECKPOINTS[part].name, find_file(part, folder), device=device)


def _read_nested(file: Path) -> Mapping[str, Any]:
    import torch

    try:
        obj = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{file} is not a readable PyTorch checkpoint ({type(err).__name__}); use the "
            f"official 'stitching_retargeting_module.pth' from "
            f"{CHECKPOINTS['stitching_retargeting_module'].source}"
        ) from None
    if not isinstance(obj, Mapping):
        obj = {}
    return obj


def load_stitching(
    folder: str | os.PathLike[str] | None, device: str | torch.device = "cpu"
) -> dict[str, torch.nn.Module]:
    """The stitching, lip and eye MLPs from ``stitching_retargeting_module.pth``.

    Each of ``retarget_shoulder`` / ``retarget_mouth`` / ``retarget_eye`` is checked key
    by key and shape by shape after removing ``module.`` prefixes.

    Raises:
        MissingWeightsError: the file is absent.
        CheckpointError: unreadable, a part missing, or keys/shapes that differ.
    """
    import torch

    from avatarlab.engines.liveportrait.networks import build

    ckpt = get_checkpoint(CHECKPOINTS["stitching_retargeting_module"].name)
    file = find_file("stitching_retargeting_module", folder)
    obj = _read_nested(file)
    models: dict[str, torch.nn.Module] = {}
    for ours, key in STITCHING_KEYS.items():
        part = obj.get(key)
        if not isinstance(part, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in part.values()
        ):
            found = ", ".join(map(str, list(obj)[:5])) or "nothing"
            raise CheckpointError(
                f"{file} has no '{key}' state dict (found: {found}); use the official "
                f"'{ckpt.filename}' from {ckpt.source}"
            )
        state = {str(k).removeprefix("module."): v for k, v in part.items()}
        model = build(ours)
        diff = compare_layout(state, {k: tuple(v.shape) for k, v in model.state_dict().items()})
        if not diff.ok:
            raise CheckpointError(
                f"{file} does not fit the LivePortrait {ours} MLP ('{key}'): {diff.summary()}. "
                f"Use the official '{ckpt.filename}' from {ckpt.source}"
            )
        model.load_state_dict(state, strict=True)
        models[ours] = model.to(device).eval()
    return models


def save_official_layout(
    folder: str | os.PathLike[str],
    base: Mapping[str, torch.nn.Module],
    mlps: Mapping[str, torch.nn.Module],
) -> Path:
    """Write networks as the official files into ``folder`` (HuggingFace sub-folders).

    ``base`` maps each of :data:`BASE_PARTS` to its network, ``mlps`` maps ``stitching``,
    ``lip`` and ``eye``; the stitching file gets the ``module.`` prefixes of the published
    one. Used to make checkpoint files from filled weights (tests, benchmarks).
    """
    import torch

    root = Path(folder)
    (root / "base_models").mkdir(parents=True, exist_ok=True)
    (root / "retargeting_models").mkdir(parents=True, exist_ok=True)
    for part in BASE_PARTS:
        torch.save(base[part].state_dict(), root / "base_models" / f"{part}.pth")
    nested = {
        key: {f"module.{k}": v for k, v in mlps[ours].state_dict().items()}
        for ours, key in STITCHING_KEYS.items()
    }
    torch.save(nested, root / "retargeting_models" / "stitching_retargeting_module.pth")
    return root
