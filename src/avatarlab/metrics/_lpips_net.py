"""LPIPS v0.1 with the AlexNet trunk, written for avatarlab (the ``lpips`` package's
``LPIPS(net="alex", version="0.1")`` computes the same thing).

Two state dicts in their official layouts:

- :class:`AlexNetFeatures`: torchvision's ``alexnet().features`` (keys
  ``features.{0,3,6,8,10}.{weight,bias}``), so ``alexnet-owt-7be5be79.pth`` loads key
  by key; the file's ``classifier.*`` tensors are checked, not used;
- :class:`LinearHeads`: the five 1x1 convolutions of lpips' ``weights/v0.1/alex.pth``
  (keys ``lin{0..4}.model.1.weight``; ``model.0`` is a parameter-free dropout).

Forward: inputs ``(B, 3, H, W)`` RGB in [-1, 1]; the scaling layer ``(x - SHIFT) /
SCALE``; AlexNet's five ReLU outputs (after conv1..conv5); each unit-normalised over
channels (``x / (||x|| + 1e-10)``), squared difference of the two images, the 1x1
linear head, mean over space; the five layers summed.
"""

from __future__ import annotations

import torch
from torch import nn

#: lpips' ScalingLayer constants (ImageNet statistics in [-1, 1] units), RGB order.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
#: Channels of the five tapped ReLU layers of AlexNet.
CHANNELS = (64, 192, 384, 256, 256)
#: Index of the ReLU after each tapped convolution in ``features``.
TAPS = (1, 4, 7, 9, 11)
NORM_EPS = 1e-10
#: torchvision AlexNet's classifier (in its files, unused by LPIPS): key -> shape.
CLASSIFIER = {
    "classifier.1.weight": (4096, 256 * 6 * 6),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet ``features`` up to conv5's ReLU; returns the five tapped ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                outs.append(x)
        return outs


class _Head(nn.Module):
    """lpips' NetLinLayer with dropout: ``model.0`` dropout, ``model.1`` 1x1 conv, no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # type: ignore[no-any-return]


class LinearHeads(nn.Module):
    """The five per-layer linear heads ``lin0`` .. ``lin4`` (weights ``(1, C, 1, 1)``)."""

    def __init__(self) -> None:
        super().__init__()
        for k, channels in enumerate(CHANNELS):
            self.add_module(f"lin{k}", _Head(channels))

    def heads(self) -> list[nn.Module]:
        return [getattr(self, f"lin{k}") for k in range(len(CHANNELS))]


class LPIPSAlex(nn.Module):
    """LPIPS v0.1, AlexNet-linear: ``forward(x0, x1)`` -> ``(B, 5)`` per-layer distances.

    ``x0``, ``x1``: ``(B, 3, H, W)`` float RGB in [-1, 1] (H, W >= 32); the LPIPS distance
    is the sum over the last axis.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexNetFeatures()
        self.lins = LinearHeads()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        # Each side through the trunk on its own, as lpips does: the same batch shapes
        # keep the convolutions' float32 rounding the reference's.
        feats0 = self.net((x0 - self.shift) / self.scale)
        feats1 = self.net((x1 - self.shift) / self.scale)
        layers = []
        for a, b, head in zip(feats0, feats1, self.lins.heads(), strict=True):
            diff = (_unit(a) - _unit(b)) ** 2
            layers.append(head(diff).mean((2, 3)))
        return torch.cat(layers, dim=1)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Features divided by their L2 norm over channels (+ 1e-10), as lpips' normalize_tensor."""
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + NORM_EPS)


def alexnet_schema() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's whole AlexNet state dict (``alexnet-owt-7be5be79.pth``)."""
    feats = {k: tuple(v.shape) for k, v in AlexNetFeatures().state_dict().items()}
    return {**feats, **CLASSIFIER}


def heads_schema() -> dict[str, tuple[int, ...]]:
    """Key -> shape of lpips' ``weights/v0.1/alex.pth``."""
    return {k: tuple(v.shape) for k, v in LinearHeads().state_dict().items()}
