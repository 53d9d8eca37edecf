"""The deterministic fill rules of ``../shared/fixtures`` (README "Fill rule").

Conformance fixtures were produced by reference implementations whose weights
were set by these rules instead of trained values, so any model with the same
state-dict keys and shapes reproduces the fixture outputs exactly. Used by the
conformance tests of every neural port and by benchmarks that need non-trivial
weights without a checkpoint file.

- Rule ``"A"`` (``fixtures/README.md``): Wav2Lip, SyncNet_color, syncnet_python.
- Rule ``"B"`` (scale-preserving, ``fixtures/liveportrait/README.md``): LivePortrait,
  GFPGAN, CodeFormer; rule A makes deep networks' outputs independent of their input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch

FILL_SCALE = 0.05
FILL_STEP = 0.37
FILL_KEY_PHASE = 1.3

Rule = Literal["A", "B"]


def _fill_tensor(k: int, shape: tuple[int, ...], key: str, rule: Rule = "A") -> torch.Tensor:
    """The rule's float64 values for the ``k``-th sorted key ``key`` of ``shape``."""
    if rule == "B":
        return _fill_tensor_b(k, shape, key)
    n = math.prod(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.float64)
    phase = torch.arange(n, dtype=torch.float64).mul_(FILL_STEP).add_(FILL_KEY_PHASE * k)
    v = phase.sin_().mul_(FILL_SCALE)
    if key.endswith("running_var"):
        v = v.abs_().mul_(0.1).add_(1.0)
    return v.reshape(shape)


def _fill_tensor_b(k: int, shape: tuple[int, ...], key: str) -> torch.Tensor:
    """Rule B: ``s = sin(0.37 i + 1.3 k)`` scaled so activations keep their size.

    ``num_batches_tracked`` and ``running_mean`` get 0, ``running_var`` 1; spectral-norm
    vectors (``weight_u``/``weight_v``) ``s / ||s||``; a tensor whose element count equals
    its largest dimension gets ``0.02 s`` if its last name part is ``bias``/``beta``, else
    ``1 + 0.1 s``; any other tensor ``sqrt(3 / fan_in) s`` with ``fan_in = n // shape[0]``.
    """
    n = math.prod(shape)
    if key.endswith(("num_batches_tracked", "running_mean")):
        return torch.zeros(shape, dtype=torch.float64)
    if key.endswith("running_var"):
        return torch.ones(shape, dtype=torch.float64)
    s = torch.arange(n, dtype=torch.float64).mul_(FILL_STEP).add_(FILL_KEY_PHASE * k).sin_()
    if key.endswith(("weight_u", "weight_v")):
        s = s / torch.linalg.vector_norm(s)
    elif len(shape) <= 1 or n == max(shape):
        last = key.rsplit(".", 1)[-1]
        s = s.mul_(0.02) if last in ("bias", "beta") else s.mul_(0.1).add_(1.0)
    else:
        s = s.mul_(math.sqrt(3.0 / (n // shape[0])))
    return s.reshape(shape)


def fill_values(k: int, shape: tuple[int, ...], key: str = "", rule: Rule = "A") -> np.ndarray:
    """The float64 values ``rule`` gives the ``k``-th sorted key (of name ``key``) of ``shape``.

    Rule A: ``v = 0.05 * sin(0.37 * arange(n) + 1.3 * k)`` reshaped to ``shape``; keys ending
    in ``running_var`` get ``1 + 0.1 * |v|`` (a valid variance); ``num_batches_tracked`` gets
    0. Rule B: see :func:`_fill_tensor_b`.
    """
    return _fill_tensor(k, tuple(shape), key, rule).numpy()


def filled_state_dict(
    template: Mapping[str, torch.Tensor], rule: Rule = "A"
) -> dict[str, torch.Tensor]:
    """A new state dict with ``template``'s keys, shapes and dtypes, filled by ``rule``.

    Keys are numbered in sorted (Python string) order, as the fixtures README states.
    """
    return {
        key: _fill_tensor(k, tuple(template[key].shape), key, rule).to(template[key].dtype)
        for k, key in enumerate(sorted(template))
    }


def fill_state_dict(model: torch.nn.Module, rule: Rule = "A") -> torch.nn.Module:
    """Fill ``model``'s parameters and buffers in place by ``rule``; returns it in eval mode."""
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for k, key in enumerate(sorted(state)):
            state[key].copy_(_fill_tensor(k, tuple(state[key].shape), key, rule))
    return model.eval()
