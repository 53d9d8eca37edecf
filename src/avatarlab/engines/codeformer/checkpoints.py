"""The published CodeFormer checkpoint and its strict loader.

File and source: the sczhou/CodeFormer README and ``scripts/download_pretrained_models.py``
(GitHub release v0.1.0). The file is a basicsr container ``{"params_ema": state_dict}``.
No checksum or size is published by the authors, so none is registered.

Licence: CodeFormer's code and weights are under the **S-Lab License 1.0**, which permits
**non-commercial** use only (redistribution and derivatives carry the same terms); commercial
use needs the authors' permission.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from avatarlab.weights import Checkpoint, load_into, register, register_architecture

if TYPE_CHECKING:
    import torch

    from avatarlab.engines.codeformer.model import CodeFormer

LAYOUT = "codeformer.CodeFormer"


def _schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.engines.codeformer.model import state_dict_schema

    return state_dict_schema()


register_architecture(LAYOUT, _schema)

CODEFORMER = register(
    Checkpoint(
        "codeformer",
        "codeformer.pth",
        "CodeFormer face restoration (S-Lab License 1.0: NON-COMMERCIAL use only)",
        "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
        architecture=LAYOUT,
        license="S-Lab License 1.0: non-commercial use only",
    )
)


def load_codeformer(
    path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> CodeFormer:
    """CodeFormer with the weights of ``path`` (else the cached ``codeformer.pth``).

    Raises :class:`MissingWeightsError` naming the file and its release URL when it is
    absent, :class:`CheckpointError` when its keys or shapes differ. Eval mode, on ``device``.
    """
    from avatarlab.engines.codeformer.model import CodeFormer

    return load_into(CodeFormer(), CODEFORMER.name, path, device=device)  # type: ignore[return-value]
