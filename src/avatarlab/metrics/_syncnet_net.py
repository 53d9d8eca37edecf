"""The SyncNet network of joonson/syncnet_python (``SyncNetModel.S``), in torch.

Kept apart from :mod:`avatarlab.metrics.syncnet` so that listing metrics never
imports torch. Layer order, indices and shapes reproduce the reference exactly,
so ``state_dict()`` keys match the official ``syncnet_v2.model`` file.
"""

from __future__ import annotations

import torch
from torch import nn

EMBED_DIM = 1024  # num_layers_in_fc_layers of the released model


def _conv_bn_relu2d(cin: int, cout: int, **kw: object) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, **kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]  # type: ignore[arg-type]


def _conv_bn_relu3d(cin: int, cout: int, **kw: object) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, **kw), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]  # type: ignore[arg-type]


def _fc_head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """Audio and lip towers mapping 0.2 s of speech and 5 face frames to 1024-d embeddings.

    ``forward_aud``: MFCC ``(B, 1, 13, 20)`` float32 -> ``(B, 1024)``.
    ``forward_lip``: face crops ``(B, 3, 5, 224, 224)`` float32 in 0..255, channels
    in **BGR** order as the reference feeds ``cv2.imread`` output -> ``(B, 1024)``.
    """

    def __init__(self, dim: int = EMBED_DIM) -> None:
        super().__init__()
        k3 = {"kernel_size": (3, 3), "padding": (1, 1)}
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu2d(1, 64, **k3),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            *_conv_bn_relu2d(64, 192, **k3),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            *_conv_bn_relu2d(192, 384, **k3),
            *_conv_bn_relu2d(384, 256, **k3),
            *_conv_bn_relu2d(256, 256, **k3),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *_conv_bn_relu2d(256, 512, kernel_size=(5, 4), padding=(0, 0)),
        )
        self.netfcaud = _fc_head(dim)
        self.netfclip = _fc_head(dim)
        k133 = {"kernel_size": (1, 3, 3), "padding": (0, 1, 1)}
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu3d(256, 256, **k133),
            *_conv_bn_relu3d(256, 256, **k133),
            *_conv_bn_relu3d(256, 256, **k133),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu3d(256, 512, kernel_size=(1, 6, 6), padding=0),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """MFCC windows ``(B, 1, 13, 20)`` -> audio embeddings ``(B, 1024)``."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """BGR face windows ``(B, 3, 5, 224, 224)`` in 0..255 -> lip embeddings ``(B, 1024)``."""
        return self.netfclip(self.netcnnlip(x).flatten(1))

    def forward_lip_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """All 5-frame windows of one clip at once: ``(1, 3, T, 224, 224)`` -> ``(T - 4, 1024)``.

        Only the first layer mixes time (kernel 5, stride 1, no padding) and every later
        layer has temporal kernel 1, so this equals ``forward_lip`` of each window
        ``x[:, :, t:t+5]`` while reading every frame once instead of five times.
        """
        mid = self.netcnnlip(x)  # (1, 512, T-4, 1, 1)
        return self.netfclip(mid[0, :, :, 0, 0].transpose(0, 1))
