"""GFPGAN v1.3 / v1.4 ("clean" architecture) as a torch module.

Re-implemented from the published architecture (Wang et al., "Towards Real-World Blind Face
Restoration with Generative Facial Prior", CVPR 2021; TencentARC/GFPGAN
``gfpgan/archs/gfpganv1_clean_arch.py`` and ``gfpgan/archs/stylegan2_clean_arch.py``) so that
the official ``GFPGANv1.3.pth`` / ``GFPGANv1.4.pth`` load with strict key and shape checks:
module names give exactly the reference state-dict keys (``conv_body_down.0.conv1.weight``,
``stylegan_decoder.style_convs.0.modulated_conv.weight``, ...).

The network is a U-Net whose 4x4 bottleneck predicts one StyleGAN2 latent per decoder layer,
and whose up-sampling path predicts spatial scale/shift maps (SFT) that modulate half of the
channels of a StyleGAN2 generator (``sft_half``). Conventions (those of the reference):

- input and output faces are **RGB**, float32 in ``[-1, 1]``, ``(B, 3, 512, 512)``, aligned
  to the FFHQ 5-point template (:mod:`avatarlab.engines.enhance`);
- the output is not clamped (the reference clamps when converting to an image).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FACE_SIZE = 512
"""Side of the aligned face the published checkpoints take and produce, in pixels."""
STYLE_DIM = 512

_LRELU = 0.2


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _LRELU)


def _resize2(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize by ``factor`` (0.5 or 2), half-pixel centres, no anti-aliasing."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class _NormStyle(nn.Module):
    """Pixel norm of style codes ``(B, C)``: ``x / sqrt(mean(x^2) + 1e-8)`` (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution (no bias), optionally after a 2x bilinear up-sample.

    Parameters: ``weight`` ``(1, out, in, k, k)`` and ``modulation`` (style -> per input
    channel scale). Computed as input scaling, one shared convolution and output
    demodulation, which equals convolving with the per-sample modulated weight.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        upsample: bool = False,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.modulation = nn.Linear(style_dim, cin)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel) / math.sqrt(cin))
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in, H, W)``, ``style`` ``(B, style_dim)`` -> ``(B, out, H', W')``."""
        scale = self.modulation(style)  # (B, in)
        weight = self.weight[0]  # (out, in, k, k)
        if self.upsample:
            x = _resize2(x, 2.0)
        out = F.conv2d(x * scale[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, k, k) of (w * s)^2 = (w^2 summed over k) @ s^2
            energy = scale.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()  # (B, out)
            out = out * torch.rsqrt(energy + self.eps)[:, :, None, None]
        return out


class StyleConv(nn.Module):
    """Modulated 3x3 conv x sqrt(2), plus scaled noise, plus bias, leaky ReLU 0.2."""

    def __init__(self, cin: int, cout: int, style_dim: int, *, upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, style_dim, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """``noise``: ``(1 | B, 1, H, W)``; ``None`` draws fresh standard Gaussian noise."""
        out = self.modulated_conv(x, style) * math.sqrt(2.0)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        return _lrelu(out + self.weight * noise + self.bias)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus bias, added to the up-sampled skip."""

    def __init__(self, cin: int, style_dim: int, *, upsample: bool = True) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = upsample

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (_resize2(skip, 2.0) if self.upsample else skip)
        return out


class ConstantInput(nn.Module):
    """The learned ``(1, C, 4, 4)`` input of the StyleGAN2 generator, repeated over the batch."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


def _stylegan_channels(multiplier: int, narrow: float) -> dict[int, int]:
    """Channels per resolution of the StyleGAN2 generator (``narrow`` scales all of them)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier, 128: 128 * multiplier}
    base |= {256: 64 * multiplier, 512: 32 * multiplier, 1024: 16 * multiplier}
    return {res: int(c * narrow) for res, c in base.items()}


class StyleGAN2DecoderSFT(nn.Module):
    """StyleGAN2 generator ("clean": no custom CUDA ops) with SFT modulation after each
    up-sampling conv: ``feat * scale + shift`` on the second half of the channels
    (``sft_half``) or on all of them.

    ``noises.noise{i}`` are the stored noise maps used when ``randomize_noise`` is off.
    ``style_mlp`` (the mapping network) is part of the state dict; GFPGAN v1.3/v1.4 feed
    latents directly (``input_is_latent``), so it runs only when that is off.
    """

    def __init__(
        self,
        out_size: int = FACE_SIZE,
        style_dim: int = STYLE_DIM,
        num_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        *,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        mlp: list[nn.Module] = [_NormStyle()]
        for _ in range(num_mlp):
            mlp += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(_LRELU)]
        self.style_mlp = nn.Sequential(*mlp)
        ch = _stylegan_channels(channel_multiplier, narrow)
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        self.sft_half = sft_half

        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = StyleConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        cin = ch[4]
        for level in range(3, self.log_size + 1):
            cout = ch[2**level]
            self.style_convs.append(StyleConv(cin, cout, style_dim, upsample=True))
            self.style_convs.append(StyleConv(cout, cout, style_dim))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout

    def forward(
        self,
        latent: torch.Tensor,
        conditions: list[torch.Tensor],
        *,
        input_is_latent: bool = True,
        randomize_noise: bool = True,
    ) -> torch.Tensor:
        """Image ``(B, 3, S, S)`` from latents and SFT conditions.

        ``latent``: ``(B, num_latent, style_dim)`` (one per layer) or ``(B, style_dim)``
        (shared); ``conditions``: ``[scale_8, shift_8, scale_16, shift_16, ...]``, possibly
        fewer levels than the decoder has.
        """
        if not input_is_latent:
            latent = self.style_mlp(latent) if latent.ndim == 2 else self._map_per_layer(latent)
        if latent.ndim == 2:
            latent = latent[:, None].expand(-1, self.num_latent, -1)
        noise: list[torch.Tensor | None]
        if randomize_noise:
            noise = [None] * self.num_layers
        else:
            noise = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            conv_up, conv = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            out = conv_up(out, latent[:, i], noise[i])
            if i < len(conditions):
                scale, shift = conditions[i - 1], conditions[i]
                if self.sft_half:
                    keep, mod = torch.split(out, out.shape[1] // 2, dim=1)
                    out = torch.cat([keep, mod * scale + shift], dim=1)
                else:
                    out = out * scale + shift
            out = conv(out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip

    def _map_per_layer(self, z: torch.Tensor) -> torch.Tensor:
        b, n, c = z.shape
        return self.style_mlp(z.reshape(b * n, c)).reshape(b, n, c)


class ResBlock(nn.Module):
    """conv3x3 -> lrelu -> bilinear resize -> conv3x3 -> lrelu, plus a resized 1x1 skip."""

    def __init__(self, cin: int, cout: int, factor: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _lrelu(self.conv2(_resize2(_lrelu(self.conv1(x)), self.factor)))
        return out + self.skip(_resize2(x, self.factor))


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(_LRELU),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANv1Clean(nn.Module):
    """GFPGAN: a U-Net encoder whose features steer a StyleGAN2 decoder (latents + SFT).

    Defaults are the configuration ``gfpgan/utils.py`` builds for v1.3 and v1.4 (``out_size
    512``, ``channel_multiplier 2``, ``different_w``, ``input_is_latent``, ``sft_half``).
    The U-Net runs at half the decoder's channels (``narrow * 0.5``).
    """

    def __init__(
        self,
        out_size: int = FACE_SIZE,
        style_dim: int = STYLE_DIM,
        channel_multiplier: int = 2,
        num_mlp: int = 8,
        *,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1.0,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.style_dim = style_dim
        self.log_size = int(math.log2(out_size))
        ch = _stylegan_channels(channel_multiplier, narrow * 0.5)

        self.conv_body_first = nn.Conv2d(3, ch[2**self.log_size], 1)
        self.conv_body_down = nn.ModuleList()
        cin = ch[2**self.log_size]
        for level in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(cin, ch[2 ** (level - 1)], 0.5))
            cin = ch[2 ** (level - 1)]
        self.final_conv = nn.Conv2d(cin, ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        self.toRGB = nn.ModuleList()
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        cin = ch[4]
        for level in range(3, self.log_size + 1):
            cout = ch[2**level]
            self.conv_body_up.append(ResBlock(cin, cout, 2.0))
            cin = cout
        for level in range(3, self.log_size + 1):
            self.toRGB.append(nn.Conv2d(ch[2**level], 3, 1))
        n_latent = (self.log_size * 2 - 2) if different_w else 1
        self.final_linear = nn.Linear(ch[4] * 16, n_latent * style_dim)
        self.stylegan_decoder = StyleGAN2DecoderSFT(
            out_size, style_dim, num_mlp, channel_multiplier, narrow, sft_half=sft_half
        )
        for level in range(3, self.log_size + 1):
            c = ch[2**level]
            sft_out = c if sft_half else 2 * c
            self.condition_scale.append(_sft_branch(c, sft_out))
            self.condition_shift.append(_sft_branch(c, sft_out))

    def forward(self, x: torch.Tensor, *, randomize_noise: bool = True) -> torch.Tensor:
        """Restored faces ``(B, 3, S, S)`` in about ``[-1, 1]`` from degraded faces, same layout.

        ``randomize_noise``: fresh StyleGAN2 noise on every call (the reference's inference
        default) or the stored ``noises`` buffers (deterministic: same input, same output).
        """
        feat = _lrelu(self.conv_body_first(x))
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = _lrelu(self.final_conv(feat))
        latent = self.final_linear(feat.flatten(1))
        if self.different_w:
            latent = latent.view(latent.shape[0], -1, self.style_dim)
        conditions: list[torch.Tensor] = []
        for up, scale, shift, skip in zip(
            self.conv_body_up,
            self.condition_scale,
            self.condition_shift,
            reversed(skips),
            strict=True,
        ):
            feat = up(feat + skip)
            conditions += [scale(feat), shift(feat)]
        return self.stylegan_decoder(
            latent,
            conditions,
            input_is_latent=self.input_is_latent,
            randomize_noise=randomize_noise,
        )


def state_dict_schema() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the v1.3/v1.4 state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = GFPGANv1Clean()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
