"""Training recipes: the SyncNet_color lip-sync expert and the Wav2Lip generator.

* ``train_syncnet(prepared, run, SyncNetTrainOptions(...))`` (``avatarlab train syncnet``);
* ``train_wav2lip(prepared, run, Wav2LipTrainOptions(expert=...))``
  (``avatarlab train wav2lip``), optionally with the quality discriminator (``gan``).

Both read ``avatarlab prepare --preset wav2lip`` output and write checkpoints in the
official Wav2Lip container layout, so the engines and ``avatarlab dub --engine wav2lip``
load them. Names are imported lazily: ``import avatarlab.train`` does not import torch.
See docs/training.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainOptions": "options",
    "SyncNetTrainOptions": "options",
    "Wav2LipTrainOptions": "options",
    "TrainResult": "loop",
    "resolve_checkpoint": "loop",
    "train_syncnet": "syncnet",
    "train_wav2lip": "wav2lip",
    "Wav2LipTrainDataset": "data",
    "Wav2LipDiscQual": "disc",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'avatarlab.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"avatarlab.train.{module}"), name)
