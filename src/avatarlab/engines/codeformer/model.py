"""CodeFormer (face restoration with a learned codebook and a fidelity weight) as a torch module.

Re-implemented from the published architecture (Zhou et al., "Towards Robust Blind Face
Restoration with Codebook Lookup Transformer", NeurIPS 2022; sczhou/CodeFormer
``basicsr/archs/codeformer_arch.py`` and ``basicsr/archs/vqgan_arch.py``, configured as
``inference_codeformer.py`` builds it) so that the official ``codeformer.pth`` loads with
strict key and shape checks (``encoder.blocks.1.norm1.weight``, ``ft_layers.0.self_attn
.in_proj_weight``, ``fuse_convs_dict.256.scale.0.weight``, ...).

A VQGAN encoder maps the degraded face to a 16x16 grid of 256-d features; a 9-layer
transformer predicts, for each cell, one of 1024 codebook entries; the VQGAN generator
decodes the looked-up codes to a face. The fidelity weight ``w`` in ``[0, 1]`` blends in the
encoder's features at 32-256 px through SFT blocks: ``w = 0`` trusts the codebook (highest
quality, least faithful), ``w = 1`` the input. Faces are **RGB** float32 in ``[-1, 1]``,
``(B, 3, 512, 512)``, aligned to the FFHQ 5-point template.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FACE_SIZE = 512
"""Side of the aligned face the published checkpoint takes and produces, in pixels."""
CODEBOOK_SIZE = 1024
CODE_DIM = 256
LATENT_GRID = 16
"""The code grid is 16 x 16 = 256 tokens."""

_NF = 64
_CH_MULT = (1, 2, 2, 4, 4, 8)
_RES_BLOCKS = 2
_ATTN_RESOLUTIONS = (16,)
_ENCODER_TAPS = {512: 2, 256: 5, 128: 8, 64: 11, 32: 14, 16: 18}
"""Encoder block index after which the feature of each resolution is kept for fusion."""
_GENERATOR_TAPS = {16: 6, 32: 9, 64: 12, 128: 15, 256: 18, 512: 21}
"""Generator block index after which the feature of each resolution is fused."""
_FUSE_CHANNELS = {16: 512, 32: 256, 64: 256, 128: 128, 256: 128, 512: 64}
CONNECT = (32, 64, 128, 256)
"""Resolutions whose encoder features are fused into the generator (the published model)."""


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


def _swish(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)`` written out: the fused ``F.silu`` rounds differently, and this
    network amplifies rounding enough to matter at the fixtures' 1e-4."""
    return x * torch.sigmoid(x)


class ResBlock(nn.Module):
    """GroupNorm -> swish -> conv3x3, twice, plus the input (1x1 conv when channels change)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = _group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv_out = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(_swish(self.norm2(h)))
        return h + (x if self.conv_out is None else self.conv_out(x))


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions of a feature map (1x1 q, k, v, proj)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q = self.q(n).reshape(b, c, h * w)
        k = self.k(n).reshape(b, c, h * w)
        v = self.v(n).reshape(b, c, h * w)
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=2)  # (B, HW, HW)
        out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Pad one pixel right and bottom, then a stride-2 conv3x3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2x, then conv3x3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _encoder_blocks() -> list[nn.Module]:
    blocks: list[nn.Module] = [nn.Conv2d(3, _NF, 3, 1, 1)]
    res, cin = FACE_SIZE, _NF
    for i, mult in enumerate(_CH_MULT):
        cout = _NF * mult
        for _ in range(_RES_BLOCKS):
            blocks.append(ResBlock(cin, cout))
            cin = cout
            if res in _ATTN_RESOLUTIONS:
                blocks.append(AttnBlock(cin))
        if i != len(_CH_MULT) - 1:
            blocks.append(Downsample(cin))
            res //= 2
    blocks += [ResBlock(cin, cin), AttnBlock(cin), ResBlock(cin, cin)]
    blocks += [_group_norm(cin), nn.Conv2d(cin, CODE_DIM, 3, 1, 1)]
    return blocks


def _generator_blocks() -> list[nn.Module]:
    cin = _NF * _CH_MULT[-1]
    res = FACE_SIZE // 2 ** (len(_CH_MULT) - 1)
    blocks: list[nn.Module] = [nn.Conv2d(CODE_DIM, cin, 3, 1, 1)]
    blocks += [ResBlock(cin, cin), AttnBlock(cin), ResBlock(cin, cin)]
    for i in reversed(range(len(_CH_MULT))):
        cout = _NF * _CH_MULT[i]
        for _ in range(_RES_BLOCKS):
            blocks.append(ResBlock(cin, cout))
            cin = cout
            if res in _ATTN_RESOLUTIONS:
                blocks.append(AttnBlock(cin))
        if i != 0:
            blocks.append(Upsample(cin))
            res *= 2
    blocks += [_group_norm(cin), nn.Conv2d(cin, 3, 3, 1, 1)]
    return blocks


class _Blocks(nn.Module):
    """Holds ``blocks`` so that keys read ``encoder.blocks.N`` / ``generator.blocks.N``."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class _Quantizer(nn.Module):
    """The VQGAN codebook: ``embedding.weight`` ``(1024, 256)``."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(CODEBOOK_SIZE, CODE_DIM)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, 256)`` int -> features ``(B, 256, 16, 16)``."""
        feat = self.embedding.weight[indices]  # (B, HW, C)
        grid = feat.transpose(1, 2).reshape(-1, CODE_DIM, LATENT_GRID, LATENT_GRID)
        return grid.contiguous()  # the layout sets the rounding of the statistics (AdaIN)


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: self-attention (positions added to queries and keys) + GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``x`` ``(L, B, D)`` tokens, ``pos`` ``(L, 1 | B, D)`` position embedding."""
        h = self.norm1(x)
        qk = h + pos
        x = x + self.self_attn(qk, qk, h)[0]  # the weights path: the reference's rounding
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class FuseSFT(nn.Module):
    """Fusion of encoder and generator features: ``dec + w * (dec * scale + shift)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encode_enc = ResBlock(2 * channels, channels)
        self.scale = _sft(channels)
        self.shift = _sft(channels)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, w: float) -> torch.Tensor:
        h = self.encode_enc(torch.cat([enc, dec], dim=1))
        return dec + w * (dec * self.scale(h) + self.shift(h))


def _sft(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


def _adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give ``content`` the per-channel mean and std (unbiased, + eps in the variance) of ``style``."""

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]

    c_mean, c_std = stats(content)
    s_mean, s_std = stats(style)
    return (content - c_mean) / c_std * s_std + s_mean


@dataclass(frozen=True)
class CodePrediction:
    """What the encoder and transformer produce for a batch; the generator decodes it.

    logits: ``(B, 256, 1024)`` code scores per token; lq_feat: ``(B, 256, 16, 16)`` encoder
    output; skips: encoder features by resolution for fusion.
    """

    logits: torch.Tensor
    lq_feat: torch.Tensor
    skips: dict[int, torch.Tensor]


class CodeFormer(nn.Module):
    """CodeFormer with the published configuration (512-d, 8 heads, 9 layers, 1024 codes)."""

    def __init__(
        self,
        dim: int = 512,
        heads: int = 8,
        layers: int = 9,
        connect: tuple[int, ...] = CONNECT,
    ) -> None:
        super().__init__()
        self.encoder = _Blocks(_encoder_blocks())
        self.quantize = _Quantizer()
        self.generator = _Blocks(_generator_blocks())
        self.connect = tuple(connect)
        self.position_emb = nn.Parameter(torch.zeros(LATENT_GRID * LATENT_GRID, dim))
        self.feat_emb = nn.Linear(CODE_DIM, dim)
        self.ft_layers = nn.Sequential(
            *(TransformerLayer(dim, heads, 2 * dim) for _ in range(layers))
        )
        self.idx_pred_layer = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, CODEBOOK_SIZE, bias=False)
        )
        self.fuse_convs_dict = nn.ModuleDict(
            {str(res): FuseSFT(_FUSE_CHANNELS[res]) for res in self.connect}
        )

    def predict_codes(self, x: torch.Tensor) -> CodePrediction:
        """Encoder and transformer: code logits and the features the fusion needs."""
        taps = {_ENCODER_TAPS[r]: r for r in self.connect}
        skips: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.encoder.blocks):
            x = block(x)
            if i in taps:
                skips[taps[i]] = x
        tokens = self.feat_emb(x.flatten(2).permute(2, 0, 1))  # (L, B, D)
        pos = self.position_emb[:, None]
        for layer in self.ft_layers:
            tokens = layer(tokens, pos)
        logits = self.idx_pred_layer(tokens).permute(1, 0, 2)  # (B, L, codes)
        return CodePrediction(logits, x, skips)

    def decode(self, codes: CodePrediction, w: float = 0.5, *, adain: bool = True) -> torch.Tensor:
        """Faces ``(B, 3, 512, 512)`` from predicted codes, fusing encoder features by ``w``.

        ``adain``: give the looked-up code features the colour statistics of the encoder
        output (what the reference's inference does).
        """
        feat = self.quantize.lookup(codes.logits.argmax(dim=2))
        if adain:
            feat = _adain(feat, codes.lq_feat)
        taps = {_GENERATOR_TAPS[r]: r for r in self.connect}
        for i, block in enumerate(self.generator.blocks):
            feat = block(feat)
            if w > 0 and i in taps:
                res = taps[i]
                feat = self.fuse_convs_dict[str(res)](codes.skips[res], feat, w)
        return feat

    def forward(self, x: torch.Tensor, w: float = 0.5, *, adain: bool = True) -> torch.Tensor:
        """Restored faces from degraded ones, both ``(B, 3, 512, 512)`` RGB in ``[-1, 1]``."""
        return self.decode(self.predict_codes(x), w, adain=adain)


def state_dict_schema() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = CodeFormer()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
