"""Building blocks shared by LivePortrait's networks (human model).

Same parameter names and numerics as the reference's ``src/modules/util.py``
(KwaiVGI/LivePortrait), re-implemented: conv + batch-norm blocks in 2-D and 3-D,
the 3-D hourglass of the dense-motion network, SPADE residual blocks with spectral
norm, ConvNeXt-V2's channels-first layer norm and global response normalisation.
Conventions kept from the reference: nearest-neighbour upsampling
(``F.interpolate`` default mode), ``F.leaky_relu`` slopes 0.01 (blocks) and 0.2
(SPADE), exact (erf) GELU.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(d: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``(d, h, w, 3)`` normalised ``(x, y, z)`` in [-1, 1] (x right, y down, z in).

    Spacing is ``2 / (n - 1)`` (end points on -1 and 1), as the reference's
    ``make_coordinate_grid``; the warps that read it use ``align_corners=False``.
    """

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1)) - 1

    z, y, x = torch.meshgrid(axis(d), axis(h), axis(w), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def keypoint_gaussians(
    kp: torch.Tensor, size: tuple[int, int, int], variance: float
) -> torch.Tensor:
    """``(B, K, d, h, w)`` Gaussians ``exp(-|g - kp|^2 / (2 variance))`` around ``kp (B, K, 3)``."""
    grid = coordinate_grid(*size, like=kp)
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class ConvNormAct2d(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU (or LeakyReLU 0.01): the reference's ``SameBlock2d``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1, lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding)
        self.norm = nn.BatchNorm2d(cout)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x) if self.lrelu else F.relu(x)


class Down2d(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU -> 2x2 average pool (``DownBlock2d``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class Down3d(nn.Module):
    """Conv3d -> BatchNorm3d -> ReLU -> average pool over (1, 2, 2) (``DownBlock3d``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class Up3d(nn.Module):
    """Nearest upsampling by (1, 2, 2) -> Conv3d -> BatchNorm3d -> ReLU (``UpBlock3d``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0))
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out))) + x


class HourglassEncoder(nn.Module):
    """``num_blocks`` Down3d; channels ``min(max_features, base * 2**(i+1))``."""

    def __init__(self, base: int, cin: int, num_blocks: int, max_features: int):
        super().__init__()
        widths = [cin] + [min(max_features, base * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down_blocks = nn.ModuleList(Down3d(a, b) for a, b in pairwise(widths))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """Up3d with skip concatenation back to the input size, then Conv3d -> BN3d -> ReLU.

    ``out_filters = base + cin`` channels (the last skip is the input itself).
    """

    def __init__(self, base: int, cin: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            width = min(max_features, base * 2 ** (i + 1))
            blocks.append(
                Up3d(width if i == num_blocks - 1 else 2 * width, min(max_features, base * 2**i))
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = base + cin
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, 3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass(nn.Module):
    """3-D U-Net (encoder + decoder) of the dense-motion network."""

    def __init__(self, base: int, cin: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = HourglassEncoder(base, cin, num_blocks, max_features)
        self.decoder = HourglassDecoder(base, cin, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class SPADE(nn.Module):
    """Instance norm (no affine) modulated by ``1 + gamma(seg)`` and ``beta(seg)``.

    ``seg`` is resized to ``x`` with nearest-neighbour interpolation; 128 hidden channels.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x)
        act = self.mlp_shared(F.interpolate(seg, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.mlp_gamma(act)) + self.mlp_beta(act)


class SPADEResBlock(nn.Module):
    """SPADE residual block with spectrally normalised convolutions (``SPADEResnetBlock``).

    A learned 1x1 shortcut (no bias) when ``cin != cout``; activations leaky ReLU 0.2.
    """

    def __init__(self, cin: int, cout: int, label_channels: int):
        super().__init__()
        sn = nn.utils.spectral_norm
        middle = min(cin, cout)
        self.learned_shortcut = cin != cout
        self.conv_0 = sn(nn.Conv2d(cin, middle, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(middle, cout, 3, padding=1))
        self.norm_0 = SPADE(cin, label_channels)
        self.norm_1 = SPADE(middle, label_channels)
        if self.learned_shortcut:
            self.conv_s = sn(nn.Conv2d(cin, cout, 1, bias=False))
            self.norm_s = SPADE(cin, label_channels)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of ``(B, C, H, W)`` (ConvNeXt's ``channels_first``)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation of channels-last ``(B, H, W, C)`` (ConvNeXt-V2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x
