"""torch helpers shared by the neural engines, metrics and training: one device rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab.errors import OptionError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when present; asking for CUDA without one is a user error.

    Raises:
        OptionError: an unknown device name, or CUDA on a machine without a usable GPU.
    """
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise OptionError(
            f"unknown torch device {str(device)!r}: use cpu, cuda, cuda:N or auto"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("CUDA was requested but this machine has no usable GPU: use cpu")
    return dev
