"""The published GFPGAN v1.3 / v1.4 checkpoints and their strict loader.

Files and sources: the "Model Zoo" of the TencentARC/GFPGAN README (GitHub release assets).
The files are basicsr containers ``{"params_ema": state_dict}`` (``params`` in training
snapshots), read without running code from them. TencentARC publishes no checksums or sizes
for these files, so none are registered and files are recognised by their state-dict layout
(v1.3 and v1.4 share it and cannot be told apart without a checksum).

Licence: GFPGAN is Apache-2.0 except third-party parts listed in its ``License_GFPGAN.txt``:
the StyleGAN2 decoder code derives from rosinality's stylegan2-pytorch (MIT), itself a port
of NVIDIA's StyleGAN2 (NVIDIA Source Code License, non-commercial); the "clean" architecture
used here avoids NVIDIA's custom CUDA ops. Check the terms before commercial use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from avatarlab.weights import Checkpoint, load_into, register, register_architecture

if TYPE_CHECKING:
    import torch

    from avatarlab.engines.gfpgan.model import GFPGANv1Clean

GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download"
LAYOUT = "gfpgan.GFPGANv1Clean"
LICENCE = "Apache-2.0; StyleGAN2-derived decoder, see License_GFPGAN.txt"


def _schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.engines.gfpgan.model import state_dict_schema

    return state_dict_schema()


register_architecture(LAYOUT, _schema)

GFPGAN_V13 = register(
    Checkpoint(
        "gfpgan_v1.3",
        "GFPGANv1.3.pth",
        "GFPGAN v1.3 face restoration",
        f"{GFPGAN_RELEASES}/v1.3.0/GFPGANv1.3.pth",
        architecture=LAYOUT,
        license=LICENCE,
    )
)
GFPGAN_V14 = register(
    Checkpoint(
        "gfpgan_v1.4",
        "GFPGANv1.4.pth",
        "GFPGAN v1.4 face restoration",
        f"{GFPGAN_RELEASES}/v1.3.4/GFPGANv1.4.pth",
        architecture=LAYOUT,
        license=LICENCE,
    )
)
VERSIONS = {"1.3": GFPGAN_V13.name, "1.4": GFPGAN_V14.name}
"""GFPGAN version -> registered checkpoint name."""


def load_gfpgan(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    version: str = "1.4",
) -> GFPGANv1Clean:
    """GFPGANv1Clean with the weights of ``path`` (else the cached file of ``version``).

    Raises :class:`MissingWeightsError` naming the file and its release URL when it is
    absent, :class:`CheckpointError` when its keys or shapes differ. Eval mode, on ``device``.
    """
    from avatarlab.engines.gfpgan.model import GFPGANv1Clean

    return load_into(GFPGANv1Clean(), VERSIONS[version], path, device=device)  # type: ignore[return-value]
