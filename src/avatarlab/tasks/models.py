"""The checkpoints avatarlab knows: list them, identify or check a file, fetch them.

Importing the engines and metrics packages lets each register its own checkpoints
(``avatarlab.weights.add_provider``), so the registry below is complete here.
Nothing else downloads: ``fetch`` runs only when a user asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import avatarlab.engines
import avatarlab.metrics  # noqa: F401  (registers the metrics' checkpoints)
from avatarlab import weights
from avatarlab.errors import OptionError


def list_checkpoints() -> list[weights.Checkpoint]:
    """Every registered checkpoint (engines', metrics' and other packages'), by name."""
    return weights.known_checkpoints()


def verify_checkpoint(
    path: str | os.PathLike[str], name: str | None = None, trusted: bool = False
) -> weights.FileCheck:
    """Which registered checkpoint the file at ``path`` is (checksum, size or layout), or,
    with ``name``, whether it is that one."""
    return weights.check_file(path, name, trusted=trusted)


@dataclass(frozen=True)
class FetchOptions:
    """Where ``models fetch`` puts downloaded checkpoints.

    Attributes:
        to: folder for the files; default: the weights cache ($AVATARLAB_WEIGHTS or
            ~/.cache/avatarlab), where every command looks for them.
        progress: show a progress bar while downloading (on a terminal).
    """

    to: str | None = None
    progress: bool = True


def fetch(names: Sequence[str], options: FetchOptions | None = None) -> list[Path]:
    """Download registered checkpoints by name from their official sources (resumable,
    sha256-checked where one is registered); returns the files in ``names`` order.

    Raises:
        OptionError: no name given. MissingWeightsError: an unknown name (before any
        download), or a source that is not a direct download link.
    """
    options = options or FetchOptions()
    if not names:
        raise OptionError("name at least one checkpoint; `avatarlab models list` shows them")
    for name in names:
        weights.get_checkpoint(name)  # unknown names fail before any download
    return [weights.fetch(name, options.to, options.progress) for name in names]


__all__ = ["FetchOptions", "fetch", "list_checkpoints", "verify_checkpoint"]
