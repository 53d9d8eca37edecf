"""The field's corpora: dataset cards, layout readers, the preparation pipeline, training data.

* cards: ``list_cards()``, ``get_card("VoxCeleb2")`` (also ``avatarlab datasets list|show``);
* readers: ``read_clips(root, "voxceleb2")`` -> ``[Clip(path, dataset, speaker_id, ...)]``;
* preparation: ``prepare(src, out, PrepareOptions(preset="wav2lip"), executor="ray")``
  and its per-clip function ``prepare_clip`` (also ``avatarlab prepare``);
* results: ``read_manifest(out)``, ``split_of(speaker_id)``;
* training: ``avatarlab.datasets.torch.Wav2LipDataset`` (needs torch).

Names are imported lazily, so ``import avatarlab.datasets`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetCard": "cards",
    "get_card": "cards",
    "list_cards": "cards",
    "Clip": "readers",
    "read_clips": "readers",
    "reader_names": "readers",
    "PRESETS": "options",
    "PrepareOptions": "options",
    "ClipResult": "pipeline",
    "PrepareSummary": "pipeline",
    "SegmentResult": "pipeline",
    "prepare": "pipeline",
    "prepare_clip": "pipeline",
    "read_manifest": "manifest",
    "split_of": "manifest",
    "get_executor": "executors",
    "Wav2LipDataset": "torch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'avatarlab.datasets' has no attribute {name!r}")
    return getattr(importlib.import_module(f"avatarlab.datasets.{module}"), name)
