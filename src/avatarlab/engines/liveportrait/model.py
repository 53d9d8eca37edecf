"""The LivePortrait human model as one object: F, M, W, G and the three MLPs.

The calls of the reference's ``src/live_portrait_wrapper.py`` (``extract_feature_3d``,
``get_kp_info``, ``transform_keypoint``, ``stitching``, ``retarget_eye``/``lip``,
``warp_decode``), batched, on any torch device, without autocast: float32 throughout
(the reference runs float16 autocast on CUDA by default; its CPU path is float32).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from avatarlab.engines.liveportrait import keypoints as kpt
from avatarlab.engines.liveportrait.checkpoints import BASE_PARTS, load_part, load_stitching
from avatarlab.engines.liveportrait.networks import build


@dataclass
class LivePortraitModels:
    """The seven networks (eval mode) and the device they run on."""

    appearance_feature_extractor: nn.Module
    motion_extractor: nn.Module
    warping_module: nn.Module
    spade_generator: nn.Module
    stitching: nn.Module
    lip: nn.Module
    eye: nn.Module
    device: torch.device

    @classmethod
    def build(cls, device: str | torch.device = "cpu") -> LivePortraitModels:
        """Untrained networks (tests and benchmarks fill them by a fixture rule)."""
        parts = {
            name: build(name).to(device).eval() for name in (*BASE_PARTS, "stitching", "lip", "eye")
        }
        return cls(**parts, device=torch.device(device))  # type: ignore[arg-type]

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
    ) -> LivePortraitModels:
        """The official files from ``folder`` (else the cache), strictly checked."""
        base = {part: load_part(part, folder, device) for part in BASE_PARTS}
        return cls(**base, **load_stitching(folder, device), device=torch.device(device))  # type: ignore[arg-type]

    def networks(self) -> dict[str, nn.Module]:
        """Name -> network, in the order F, M, W, G, stitching, lip, eye."""
        names = (*BASE_PARTS, "stitching", "lip", "eye")
        return {name: getattr(self, name) for name in names}

    @torch.no_grad()
    def feature(self, image: torch.Tensor) -> torch.Tensor:
        """F: ``(B, 3, 256, 256)`` in [0, 1] -> ``(B, 32, 16, 64, 64)``."""
        out: torch.Tensor = self.appearance_feature_extractor(image)
        return out

    @torch.no_grad()
    def kp_info(self, image: torch.Tensor) -> kpt.KpInfo:
        """M, refined: degrees ``(B, 1)``, ``kp``/``exp`` ``(B, 21, 3)``, ``t``, ``scale``."""
        return kpt.kp_info(self.motion_extractor(image))

    @torch.no_grad()
    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """``x_d`` corrected by the stitching MLP (``wrapper.stitching``)."""
        return kpt.stitch(self.stitching, x_s, x_d)

    @torch.no_grad()
    def retarget_eye(self, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """Eye retargeting offsets ``(B, 21, 3)`` for ratios ``(B, 3)``."""
        return kpt.retarget(self.eye, x_s, ratio)

    @torch.no_grad()
    def retarget_lip(self, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """Lip retargeting offsets ``(B, 21, 3)`` for ratios ``(B, 2)``."""
        return kpt.retarget(self.lip, x_s, ratio)

    @torch.no_grad()
    def warp_decode(
        self, feature: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """W then G: ``out (B, 3, 512, 512)`` in [0, 1], ``occlusion_map``, ``deformation``."""
        ret: dict[str, torch.Tensor] = self.warping_module(feature, kp_driving=x_d, kp_source=x_s)
        ret["out"] = self.spade_generator(ret["out"])
        return ret
