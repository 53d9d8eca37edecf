"""The registry of checkpoints that only exist online.

avatarlab never downloads weights. A neural engine or metric asks the registry
for a checkpoint by name; the registry looks for the file at an explicit path,
then in the cache folder (``$AVATARLAB_WEIGHTS`` or ``~/.cache/avatarlab``), and
raises :class:`MissingWeightsError` naming the file and its official source.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from avatarlab.errors import CheckpointError, MissingWeightsError


@dataclass(frozen=True)
class Checkpoint:
    """A known checkpoint file: what it is, its size and checksum, where it is published."""

    name: str
    filename: str
    description: str
    source: str
    size: int | None = None
    sha256: str | None = None


_REGISTRY: dict[str, Checkpoint] = {}


def register(ckpt: Checkpoint) -> Checkpoint:
    """Add a checkpoint to the registry (idempotent for an identical entry)."""
    known = _REGISTRY.get(ckpt.name)
    if known is not None and known != ckpt:
        raise ValueError(f"checkpoint {ckpt.name!r} registered twice with different details")
    _REGISTRY[ckpt.name] = ckpt
    return ckpt


def known_checkpoints() -> list[Checkpoint]:
    """All registered checkpoints, sorted by name."""
    return sorted(_REGISTRY.values(), key=lambda c: c.name)


def get_checkpoint(name: str) -> Checkpoint:
    """Look up a registered checkpoint by name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        names = ", ".join(sorted(_REGISTRY)) or "none"
        raise MissingWeightsError(f"unknown checkpoint {name!r}; known: {names}") from None


def cache_dir() -> Path:
    """Folder searched for checkpoints when no explicit path is given."""
    env = os.environ.get("AVATARLAB_WEIGHTS")
    return Path(env) if env else Path.home() / ".cache" / "avatarlab"


def missing_message(ckpt: Checkpoint, looked: list[Path]) -> str:
    """The one-line explanation shown when a checkpoint file is not found."""
    where = ", ".join(str(p) for p in looked)
    return (
        f"{ckpt.description} needs the file '{ckpt.filename}' (not found at {where}). "
        f"Download it from {ckpt.source} and pass its path, or put it in {cache_dir()}."
    )


def resolve(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Find the file of checkpoint ``name``: ``path`` if given, else the cache folder."""
    ckpt = get_checkpoint(name)
    candidates = [Path(path)] if path is not None else [cache_dir() / ckpt.filename]
    for cand in candidates:
        if cand.is_dir():
            cand = cand / ckpt.filename
        if cand.is_file():
            return cand
    raise MissingWeightsError(missing_message(ckpt, candidates))


def sha256sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(name: str, path: str | os.PathLike[str]) -> Path:
    """Check size and checksum of a checkpoint file against the registry."""
    ckpt = get_checkpoint(name)
    file = resolve(name, path)
    if ckpt.size is not None and file.stat().st_size != ckpt.size:
        raise CheckpointError(
            f"{file} is {file.stat().st_size} bytes but the official '{ckpt.filename}' is "
            f"{ckpt.size} bytes; download it again from {ckpt.source}"
        )
    if ckpt.sha256 is not None and sha256sum(file) != ckpt.sha256:
        raise CheckpointError(
            f"{file} does not have the checksum of the official '{ckpt.filename}'; "
            f"download it again from {ckpt.source}"
        )
    return file
