"""Wav2Lip's visual-quality discriminator (``Wav2Lip_disc_qual``), for ``--gan`` training.

Re-implemented from the published architecture (Rudrabha/Wav2Lip ``models/wav2lip.py``):
module names and layer order give the reference's state-dict keys
(``face_encoder_blocks.1.0.conv_block.0.weight``, ``binary_pred.0.weight``, ...), so its
``disc_checkpoint_step*.pth`` files and ours are interchangeable. It sees the lower half
of each generated or real 96x96 BGR face in [0, 1] and says how real it looks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEAK = 0.01  # the reference's LeakyReLU slope


class _PlainConv(nn.Module):
    """Conv -> LeakyReLU(0.01), no normalisation (the reference's ``nonorm_Conv2d``)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv_block(x), _LEAK)


def _stage(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """A strided conv from ``cin`` to ``cout`` then a shape-preserving one."""
    return nn.Sequential(
        _PlainConv(cin, cout, kernel, stride, padding),
        _PlainConv(cout, cout, kernel, 1, padding),
    )


class Wav2LipDiscQual(nn.Module):
    """P(real) of the lower half of faces: ``(B, 3, T, 96, 96)`` -> ``(T * B, 1)``.

    Frames are folded time-major into the batch (frame 0 of every item first), as the
    reference's ``to_2d`` does; 4-D input ``(B, 3, 96, 96)`` gives ``(B, 1)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(_PlainConv(3, 32, 7, 1, 3)),  # 48 x 96
                nn.Sequential(
                    _PlainConv(32, 64, 5, (1, 2), 2), _PlainConv(64, 64, 5, 1, 2)
                ),  # 48 x 48
                _stage(64, 128, 5, 2, 2),  # 24
                _stage(128, 256, 5, 2, 2),  # 12
                _stage(256, 512, 3, 2, 1),  # 6
                _stage(512, 512, 3, 2, 1),  # 3
                nn.Sequential(_PlainConv(512, 512, 3, 1, 0), _PlainConv(512, 512, 1, 1, 0)),  # 1
            ]
        )
        self.binary_pred = nn.Sequential(nn.Conv2d(512, 1, 1, 1, 0), nn.Sigmoid())

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        if faces.dim() == 5:
            faces = faces.permute(2, 0, 1, 3, 4).flatten(0, 1)
        x = faces[:, :, faces.shape[2] // 2 :]
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred(x).flatten(1)

    def perceptual_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss: BCE of P(real) of its frames against 1."""
        pred = self(fake)
        return F.binary_cross_entropy(pred, torch.ones_like(pred))
