"""The deterministic fill rule of ``../shared/fixtures`` (README "Fill rule").

Conformance fixtures were produced by reference implementations whose weights
were set by this rule instead of trained values, so any model with the same
state-dict keys and shapes reproduces the fixture outputs exactly. Used by the
conformance tests of every neural port (Wav2Lip, SyncNet_color, syncnet_python)
and by benchmarks that need non-trivial weights without a checkpoint file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

FILL_SCALE = 0.05
FILL_STEP = 0.37
FILL_KEY_PHASE = 1.3


def _fill_tensor(k: int, shape: tuple[int, ...], key: str) -> torch.Tensor:
    """The rule's float64 values for the ``k``-th sorted key ``key`` of ``shape``."""
    n = math.prod(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.float64)
    phase = torch.arange(n, dtype=torch.float64).mul_(FILL_STEP).add_(FILL_KEY_PHASE * k)
    v = phase.sin_().mul_(FILL_SCALE)
    if key.endswith("running_var"):
        v = v.abs_().mul_(0.1).add_(1.0)
    return v.reshape(shape)


def fill_values(k: int, shape: tuple[int, ...], key: str = "") -> np.ndarray:
    """The float64 values the rule gives the ``k``-th sorted key (of name ``key``) of ``shape``.

    ``v = 0.05 * sin(0.37 * arange(n) + 1.3 * k)`` reshaped to ``shape``; keys ending in
    ``running_var`` get ``1 + 0.1 * |v|`` (a valid variance); ``num_batches_tracked`` gets 0.
    """
    return _fill_tensor(k, tuple(shape), key).numpy()


def filled_state_dict(template: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A new state dict with ``template``'s keys, shapes and dtypes, filled by the rule.

    Keys are numbered in sorted (Python string) order, as the fixtures README states.
    """
    return {
        key: _fill_tensor(k, tuple(template[key].shape), key).to(template[key].dtype)
        for k, key in enumerate(sorted(template))
    }


def fill_state_dict(model: torch.nn.Module) -> torch.nn.Module:
    """Fill ``model``'s parameters and buffers in place by the rule and return it in eval mode."""
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for k, key in enumerate(sorted(state)):
            state[key].copy_(_fill_tensor(k, tuple(state[key].shape), key))
    return model.eval()
