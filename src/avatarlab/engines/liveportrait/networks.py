"""LivePortrait's five networks (human model), with the official state-dict layout.

Re-implemented from the architecture of KwaiVGI/LivePortrait (``src/modules/
appearance_feature_extractor.py``, ``motion_extractor.py``, ``convnextv2.py``,
``warping_network.py``, ``dense_motion.py``, ``spade_generator.py``,
``stitching_retargeting_network.py``; sizes from ``src/config/models.yaml``), so
that ``appearance_feature_extractor.pth``, ``motion_extractor.pth``,
``warping_module.pth``, ``spade_generator.pth`` and the three MLPs of
``stitching_retargeting_module.pth`` load key for key.

Shapes (B = batch): image ``(B, 3, 256, 256)`` RGB in [0, 1] -> feature volume
``(B, 32, 16, 64, 64)`` (F); image -> pose bins, translation, expression, scale and
canonical keypoints (M); volume + source/driving keypoints ``(B, 21, 3)`` -> warped
feature ``(B, 256, 64, 64)`` with occlusion ``(B, 1, 64, 64)`` and deformation
``(B, 16, 64, 64, 3)`` (W); warped feature -> image ``(B, 3, 512, 512)`` in [0, 1] (G).

Warps use ``F.grid_sample`` with ``align_corners=False`` (trilinear on the 5-D
volume, zero padding) on a grid whose end points are -1 and 1, as the reference
does; all of it runs on CPU and CUDA alike.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from avatarlab.engines.liveportrait.blocks import (
    GRN,
    ConvNormAct2d,
    Down2d,
    Hourglass,
    LayerNorm2d,
    ResBlock3d,
    SPADEResBlock,
    coordinate_grid,
    keypoint_gaussians,
)

NUM_KP = 21
NUM_BINS = 66


class AppearanceFeatureExtractor(nn.Module):
    """F: a portrait crop to its 3-D appearance feature volume.

    ``(B, 3, 256, 256)`` -> conv 64 -> two stride-2 blocks (128, 256) -> 1x1 conv to 512
    channels -> reshaped to ``(B, 32, 16, 64, 64)`` -> six 3-D residual blocks.
    """

    def __init__(
        self,
        image_channel: int = 3,
        block_expansion: int = 64,
        num_down_blocks: int = 2,
        max_features: int = 512,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
    ):
        super().__init__()
        self.reshape = (reshape_channel, reshape_depth)
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.first = ConvNormAct2d(image_channel, block_expansion)
        self.down_blocks = nn.ModuleList(Down2d(a, b) for a, b in pairwise(widths))
        self.second = nn.Conv2d(widths[-1], max_features, 1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        return self.resblocks_3d(x.view(b, *self.reshape, h, w))


class ConvNeXtV2Block(nn.Module):
    """Depthwise 7x7 conv -> layer norm -> 4x MLP with GELU and GRN, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """ConvNeXt-V2 backbone with LivePortrait's motion heads (no classifier).

    Heads on the pooled, layer-normed 768-d feature: ``kp`` and ``exp`` (3 * num_kp),
    ``pitch``/``yaw``/``roll`` (``num_bins`` logits), ``t`` (3), ``scale`` (1).
    """

    def __init__(
        self,
        depths: tuple[int, ...] = (3, 3, 9, 3),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        num_kp: int = NUM_KP,
        num_bins: int = NUM_BINS,
        in_chans: int = 3,
    ):
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for a, b in pairwise(dims):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(a), nn.Conv2d(a, b, 2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtV2Block(dim) for _ in range(depth)))
            for depth, dim in zip(depths, dims, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.fc_kp = nn.Linear(dims[-1], 3 * num_kp)
        self.fc_scale = nn.Linear(dims[-1], 1)
        self.fc_pitch = nn.Linear(dims[-1], num_bins)
        self.fc_yaw = nn.Linear(dims[-1], num_bins)
        self.fc_roll = nn.Linear(dims[-1], num_bins)
        self.fc_t = nn.Linear(dims[-1], 3)
        self.fc_exp = nn.Linear(dims[-1], 3 * num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
        feat = self.norm(x.mean((-2, -1)))
        return {
            "pitch": self.fc_pitch(feat),
            "yaw": self.fc_yaw(feat),
            "roll": self.fc_roll(feat),
            "t": self.fc_t(feat),
            "exp": self.fc_exp(feat),
            "scale": self.fc_scale(feat),
            "kp": self.fc_kp(feat),
        }


class MotionExtractor(nn.Module):
    """M: canonical keypoints, head pose bins, expression deltas, scale and translation.

    ``(B, 3, 256, 256)`` -> dict of raw outputs: ``pitch``/``yaw``/``roll`` ``(B, 66)``
    logits, ``t (B, 3)``, ``exp (B, 63)``, ``scale (B, 1)``, ``kp (B, 63)``.
    """

    def __init__(self, num_kp: int = NUM_KP, num_bins: int = NUM_BINS):
        super().__init__()
        self.detector = ConvNeXtV2(num_kp=num_kp, num_bins=num_bins)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.detector(image)
        return out


class DenseMotionNetwork(nn.Module):
    """Per-voxel mixture of keypoint-local flows, and the occlusion map.

    The feature volume is compressed to 4 channels, warped by each of the 21 keypoint
    flows (plus identity), stacked with the Gaussian heatmap differences and fed to a
    3-D hourglass whose output gives softmax mask weights over the 22 flows and (via a
    7x7 conv over depth-stacked channels) a sigmoid occlusion map.
    """

    def __init__(
        self,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_kp: int = NUM_KP,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        compress: int = 4,
        kp_variance: float = 0.01,
    ):
        super().__init__()
        self.num_kp = num_kp
        self.kp_variance = kp_variance
        self.hourglass = Hourglass(
            block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features
        )
        out = self.hourglass.out_filters
        self.mask = nn.Conv3d(out, num_kp + 1, 7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, 1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = nn.Conv2d(out * reshape_depth, 1, 7, padding=3)

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        feature = F.relu(self.norm(self.compress(feature)))
        b, c, d, h, w = feature.shape
        k = self.num_kp + 1
        identity = coordinate_grid(d, h, w, like=kp_source)[None, None]  # (1, 1, d, h, w, 3)
        to_source = identity - kp_driving.view(b, self.num_kp, 1, 1, 1, 3)
        to_source = to_source + kp_source.view(b, self.num_kp, 1, 1, 1, 3)
        motions = torch.cat([identity.expand(b, 1, d, h, w, 3), to_source], dim=1)

        repeated = feature[:, None].expand(b, k, c, d, h, w).reshape(b * k, c, d, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(b * k, d, h, w, 3), align_corners=False)
        deformed = deformed.view(b, k, c, d, h, w)

        heat = keypoint_gaussians(kp_driving, (d, h, w), self.kp_variance) - keypoint_gaussians(
            kp_source, (d, h, w), self.kp_variance
        )
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1)[:, :, None]
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))

        mask = F.softmax(self.mask(prediction), dim=1)  # (b, k, d, h, w)
        deformation = (motions * mask[..., None]).sum(dim=1)  # (b, d, h, w, 3)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion}


class WarpingNetwork(nn.Module):
    """W: warp the source feature volume from source to driving keypoints.

    Returns ``out (B, 256, 64, 64)`` (warped, flattened over depth, two convs, times the
    occlusion map), ``occlusion_map (B, 1, 64, 64)`` and ``deformation (B, 16, 64, 64, 3)``.
    """

    def __init__(
        self,
        num_kp: int = NUM_KP,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        dense: dict[str, int] | None = None,
    ):
        super().__init__()
        dense = dense or {}
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=reshape_channel, **dense
        )
        width = block_expansion * 2**num_down_blocks
        self.third = ConvNormAct2d(max_features, width, lrelu=True)
        self.fourth = nn.Conv2d(width, width, 1)

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        dense = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        out = F.grid_sample(feature_3d, dense["deformation"], align_corners=False)
        b, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(b, c * d, h, w))) * dense["occlusion_map"]
        return {
            "occlusion_map": dense["occlusion_map"],
            "deformation": dense["deformation"],
            "out": out,
        }


class SPADEDecoder(nn.Module):
    """G: the warped feature ``(B, 256, 64, 64)`` to an image ``(B, 3, 512, 512)`` in [0, 1].

    A 3x3 conv to 512 channels, six SPADE residual blocks conditioned on the input,
    two nearest 2x upsamplings with SPADE blocks (512 -> 256 -> 64 channels), then a
    3x3 conv to 12 channels, pixel shuffle (x2) and a sigmoid.
    """

    def __init__(self, label_channels: int = 256, out_channels: int = 64):
        super().__init__()
        wide = 2 * label_channels
        self.fc = nn.Conv2d(label_channels, wide, 3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResBlock(wide, wide, label_channels))
        self.up_0 = SPADEResBlock(wide, label_channels, label_channels)
        self.up_1 = SPADEResBlock(label_channels, out_channels, label_channels)
        self.conv_img = nn.Sequential(
            nn.Conv2d(out_channels, 3 * 4, 3, padding=1), nn.PixelShuffle(2)
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2.0), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2.0), feature)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class StitchingRetargetingNetwork(nn.Module):
    """An MLP (Linear + ReLU per hidden size, then Linear): stitching, lip or eye module."""

    def __init__(self, input_size: int, hidden_sizes: tuple[int, ...], output_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_size
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp(x)
        return out


DENSE_MOTION = {
    "block_expansion": 32,
    "max_features": 1024,
    "num_blocks": 5,
    "reshape_depth": 16,
    "compress": 4,
}
"""``warping_module_params.dense_motion_params`` of ``models.yaml``."""

MLP_SIZES: dict[str, tuple[int, tuple[int, ...], int]] = {
    "stitching": (126, (128, 128, 64), 65),
    "lip": (65, (128, 128, 64), 63),
    "eye": (66, (256, 256, 128, 128, 64), 63),
}
"""``stitching_retargeting_module_params``: input, hidden and output sizes of each MLP."""


def build(name: str) -> nn.Module:
    """A network of the human model by its checkpoint part name, with models.yaml's sizes.

    ``name``: ``appearance_feature_extractor``, ``motion_extractor``, ``warping_module``,
    ``spade_generator``, or ``stitching`` / ``lip`` / ``eye``.
    """
    if name == "appearance_feature_extractor":
        return AppearanceFeatureExtractor()
    if name == "motion_extractor":
        return MotionExtractor()
    if name == "warping_module":
        return WarpingNetwork(dense=DENSE_MOTION)
    if name == "spade_generator":
        return SPADEDecoder()
    if name in MLP_SIZES:
        cin, hidden, cout = MLP_SIZES[name]
        return StitchingRetargetingNetwork(cin, hidden, cout)
    raise KeyError(f"unknown LivePortrait network {name!r}")


def state_dict_schema(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of network ``name`` (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = build(name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
