"""Prepare a corpus for training: the ``prepare`` task behind ``avatarlab prepare``.

:class:`~avatarlab.datasets.options.PrepareOptions` decides the output;
:class:`PrepareRun` only how the run is executed (reader, executor, workers), which
never changes the files written. The work is :func:`avatarlab.datasets.pipeline.prepare`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from avatarlab.datasets.options import PrepareOptions
from avatarlab.errors import OptionError

if TYPE_CHECKING:
    from avatarlab.datasets.pipeline import PrepareSummary


@dataclass(frozen=True)
class PrepareRun:
    """Where the clips come from and what runs them (never changes the output).

    Attributes:
        dataset: reader of the corpus layout: ``folder``, ``voxceleb2``, ``lrs2``,
            ``hdtf``, ... (``avatarlab datasets list``).
        executor: ``local`` (a process pool on this machine) or ``ray`` (a cluster).
        workers: processes or Ray CPUs (``None``: one per core).
        address: Ray cluster to join, e.g. ``auto`` or ``ray://HEAD:10001``.
    """

    dataset: str = "folder"
    executor: str = "local"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"workers must be >= 1, got {self.workers}")


def prepare(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: PrepareOptions | None = None,
    run: PrepareRun | None = None,
) -> PrepareSummary:
    """Prepare every clip of the corpus at ``src`` into ``out`` (re-use ``out`` to resume).

    Returns the run's :class:`~avatarlab.datasets.pipeline.PrepareSummary`; bad clips
    are recorded as failed in the manifest, not raised (``PrepareSummary.problem`` says when nothing was produced).
    """
    from avatarlab.datasets.pipeline import prepare as run_pipeline

    run = run or PrepareRun()
    return run_pipeline(
        src,
        out,
        options,
        dataset=run.dataset,
        executor=run.executor,
        workers=run.workers,
        address=run.address,
    )


__all__ = ["PrepareOptions", "PrepareRun", "prepare"]
