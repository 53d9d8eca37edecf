"""LPIPS (Zhang et al., CVPR 2018), v0.1 AlexNet-linear, as the ``lpips`` package computes it.

Conventions:

- network: lpips 0.1.4's ``LPIPS(net="alex", version="0.1")`` ported to plain torch
  (:mod:`avatarlab.metrics._lpips_net`; the package itself needs torchvision): the
  ImageNet AlexNet of torchvision (``alexnet-owt-7be5be79.pth``) and the linear heads
  calibrated on human judgements (``alex.pth`` of lpips' ``weights/v0.1``), both read
  from a user path or the weights cache, ``alex.pth`` also from an installed ``lpips``
  package (found without importing it); never downloaded;
- input: RGB uint8 frames on the reference's grid, whole frames at their own size (no
  crop, no resize), mapped to [-1, 1] by ``x / 127.5 - 1`` (lpips' ``im2tensor``);
- distance per frame: the sum over AlexNet's five ReLU layers of the spatial mean of
  the linear head applied to the squared difference of channel-normalised features;
  mean over frames, then over clips. Lower is better; identical frames give 0.

Papers often compute LPIPS on 256x256 face crops: values at other sizes are not
comparable digit for digit.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.metrics._frames import check_pair
from avatarlab.metrics.base import LOWER, EvalContext, Metric, Requirements, register_metric
from avatarlab.weights import Checkpoint, load_into, register, register_architecture, resolve

if TYPE_CHECKING:
    from avatarlab.metrics._lpips_net import LPIPSAlex

BATCH_SIZE = 8
MIN_SIDE = 32  # AlexNet's three poolings need this much


def _alexnet_schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.metrics._lpips_net import alexnet_schema

    return alexnet_schema()


def _heads_schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.metrics._lpips_net import heads_schema

    return heads_schema()


register_architecture("torchvision_alexnet", _alexnet_schema)
register_architecture("lpips_alex_lin_v0.1", _heads_schema)
LPIPS_ALEXNET = register(
    Checkpoint(
        name="lpips_alexnet",
        filename="alexnet-owt-7be5be79.pth",
        description="torchvision's ImageNet AlexNet (the LPIPS metric's backbone)",
        source="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        architecture="torchvision_alexnet",
        license=(
            "BSD-3-Clause (torchvision, which publishes it); trained on ImageNet, whose "
            "terms of access are non-commercial research"
        ),
    )
)
LPIPS_ALEX_LIN = register(
    Checkpoint(
        name="lpips_alex_lin",
        filename="alex.pth",
        description="LPIPS v0.1 linear heads for AlexNet (the LPIPS metric)",
        source=(
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
            "alex.pth"
        ),
        size=6009,
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        architecture="lpips_alex_lin_v0.1",
        license="BSD-2-Clause (richzhang/PerceptualSimilarity, the lpips package)",
        package_file="lpips/weights/v0.1/alex.pth",
    )
)

_models: dict[tuple[str, str, str], LPIPSAlex] = {}
_models_lock = threading.Lock()


def load_lpips(
    alexnet: str | Path | None = None, lin: str | Path | None = None, device: str = "cpu"
) -> LPIPSAlex:
    """LPIPS with the official weights (paths, else the cache or lpips' package), shared
    per process.

    Raises ``MissingWeightsError`` naming ``alexnet-owt-7be5be79.pth`` or ``alex.pth``
    and their sources when absent, ``CheckpointError`` when a file has another layout.
    """
    from avatarlab.metrics._lpips_net import LPIPSAlex

    trunk = resolve(LPIPS_ALEXNET.name, alexnet)
    heads = resolve(LPIPS_ALEX_LIN.name, lin)
    key = (str(trunk.resolve()), str(heads.resolve()), device)
    with _models_lock:
        if key not in _models:
            model = LPIPSAlex()
            # the file's classifier is checked against torchvision's layout, then dropped
            load_into(model.net, LPIPS_ALEXNET.name, trunk, unused=("classifier.",))
            load_into(model.lins, LPIPS_ALEX_LIN.name, heads)
            _models[key] = model.to(device).eval()
        return _models[key]


def lpips_distance(
    pred: np.ndarray,
    ref: np.ndarray,
    model: LPIPSAlex,
    batch_size: int = BATCH_SIZE,
    device: str = "cpu",
) -> np.ndarray:
    """Per-layer LPIPS ``(N, 5)`` float64 of RGB uint8 frame pairs ``(N, H, W, 3)``.

    The LPIPS distance of frame i is ``out[i].sum()``.
    """
    import torch

    p, r = check_pair(pred, ref)
    if p.dtype != np.uint8:
        raise OptionError(f"LPIPS takes RGB uint8 frames, got {p.dtype}")
    if min(p.shape[1:3]) < MIN_SIDE:
        raise OptionError(f"LPIPS needs frames of at least {MIN_SIDE}x{MIN_SIDE}, got {p.shape}")
    out = []
    with torch.inference_mode():
        for start in range(0, len(p), batch_size):
            # contiguous NCHW as lpips' im2tensor makes it: a channels-last view would
            # take another convolution path with other float32 rounding (1e-5)
            pair = [
                torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
                .to(device)
                .permute(0, 3, 1, 2)
                .contiguous()
                .float()
                / 127.5
                - 1.0
                for x in (p, r)
            ]
            out.append(model(*pair).double().cpu().numpy())
    return np.concatenate(out)


@register_metric("lpips")
class LPIPSMetric(Metric):
    """LPIPS v0.1 AlexNet-linear per frame against the reference, lower is better.

    ``alexnet``, ``lin``: paths of ``alexnet-owt-7be5be79.pth`` and ``alex.pth`` (else
    the evaluation's weights, the cache, or an installed lpips package).
    """

    name = "lpips"
    keys = {"lpips": LOWER}
    requires = Requirements(reference=True, weights=(LPIPS_ALEXNET.name, LPIPS_ALEX_LIN.name))
    conventions = (
        "LPIPS v0.1 AlexNet-linear (port of lpips 0.1.4, torchvision alexnet-owt-7be5be79 + "
        "v0.1 alex.pth): whole RGB frames on the reference grid, no resize, x/127.5 - 1; "
        "mean over frames, then clips"
    )

    def __init__(
        self,
        alexnet: str | None = None,
        lin: str | None = None,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise OptionError(f"batch_size must be >= 1, got {batch_size}")
        self.alexnet = alexnet
        self.lin = lin
        self.batch_size = batch_size
        self.device = device
        self.reset()

    def reset(self) -> None:
        self._values: list[np.ndarray] = []

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        if ref is None:
            raise OptionError("LPIPS compares with a reference video: pass one (ref)")
        device = self.device or ctx.device
        model = load_lpips(
            self.alexnet or ctx.weights.get(LPIPS_ALEXNET.name),
            self.lin or ctx.weights.get(LPIPS_ALEX_LIN.name),
            device,
        )
        self._values.append(lpips_distance(pred, ref, model, self.batch_size, device).sum(1))

    def compute(self) -> dict[str, float]:
        """Mean over every frame since ``reset``."""
        if not self._values:
            return {"lpips": math.nan}
        return {"lpips": float(np.mean(np.concatenate(self._values)))}

    def per_frame(self) -> dict[str, np.ndarray]:
        """LPIPS of each frame of the last batch, ``(B,)``."""
        return {"lpips": self._values[-1]} if self._values else {}


__all__ = [
    "LPIPS_ALEXNET",
    "LPIPS_ALEX_LIN",
    "LPIPSMetric",
    "load_lpips",
    "lpips_distance",
]
