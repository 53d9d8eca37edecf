"""The published Wav2Lip checkpoints and loaders with strict key and shape checks.

Files come from the "Getting the weights" table of the Wav2Lip README; sizes and checksums
are left unregistered because no authoritative published values exist (the README gives
only links), so files are recognised by their state-dict layout.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from avatarlab.weights import Checkpoint, load_into, register, register_architecture

if TYPE_CHECKING:
    import torch

    from avatarlab.engines.wav2lip.model import SyncNetColor, Wav2Lip

WAV2LIP_SOURCE = "https://github.com/Rudrabha/Wav2Lip#getting-the-weights"

GENERATOR_LAYOUT = "wav2lip.Wav2Lip"
EXPERT_LAYOUT = "wav2lip.SyncNet_color"


def _generator_schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.engines.wav2lip.model import Wav2Lip, state_dict_schema

    return state_dict_schema(Wav2Lip)


def _expert_schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.engines.wav2lip.model import SyncNetColor, state_dict_schema

    return state_dict_schema(SyncNetColor)


register_architecture(GENERATOR_LAYOUT, _generator_schema)
register_architecture(EXPERT_LAYOUT, _expert_schema)

WAV2LIP = register(
    Checkpoint(
        "wav2lip",
        "wav2lip.pth",
        "Wav2Lip generator (accurate lip-sync)",
        WAV2LIP_SOURCE,
        architecture=GENERATOR_LAYOUT,
        license="non-commercial: personal and research use only (Wav2Lip README)",
    )
)
WAV2LIP_GAN = register(
    Checkpoint(
        "wav2lip_gan",
        "wav2lip_gan.pth",
        "Wav2Lip + GAN generator (sharper, slightly weaker lip-sync)",
        WAV2LIP_SOURCE,
        architecture=GENERATOR_LAYOUT,
        license="non-commercial: personal and research use only (Wav2Lip README)",
    )
)
LIPSYNC_EXPERT = register(
    Checkpoint(
        "lipsync_expert",
        "lipsync_expert.pth",
        "Wav2Lip lip-sync expert discriminator (SyncNet_color)",
        WAV2LIP_SOURCE,
        architecture=EXPERT_LAYOUT,
        license="non-commercial: personal and research use only (Wav2Lip README)",
    )
)


def load_wav2lip(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    name: str = "wav2lip",
    trusted: bool = False,
) -> Wav2Lip:
    """A Wav2Lip generator with the weights of ``path`` (else ``name``'s file in the cache).

    Takes the official ``wav2lip.pth`` / ``wav2lip_gan.pth`` (container with ``module.``-
    prefixed keys) or a plain state dict; raises :class:`MissingWeightsError` when the file is
    absent and :class:`CheckpointError` when its keys or shapes differ. Eval mode, on ``device``.
    """
    from avatarlab.engines.wav2lip.model import Wav2Lip

    return load_into(Wav2Lip(), name, path, device=device, trusted=trusted)  # type: ignore[return-value]


def load_syncnet_color(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    trusted: bool = False,
) -> SyncNetColor:
    """The SyncNet_color expert with the weights of ``path`` (else ``lipsync_expert.pth``)."""
    from avatarlab.engines.wav2lip.model import SyncNetColor

    model = load_into(SyncNetColor(), "lipsync_expert", path, device=device, trusted=trusted)
    return model  # type: ignore[return-value]
