"""What an evaluation produces: one :class:`ClipResult` per pair, one :class:`EvalResults`.

:mod:`avatarlab.metrics.report` writes them out (tables, JSON, HTML).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab.errors import AvatarLabError
from avatarlab.metrics.base import Key
from avatarlab.metrics.pairing import PairPlan
from avatarlab.metrics.planning import Skip


def describe_error(err: BaseException) -> str:
    """One line for a failure: the message of our errors, type and message otherwise."""
    if isinstance(err, AvatarLabError):
        return str(err)
    return f"{type(err).__name__}: {err}"


@dataclass
class ClipResult:
    """What one pair gave: per-clip values, per-frame series, notes, failures.

    ``values``: metric -> its ``compute()`` on this clip. ``series``: column -> ``(frames,)``
    per-frame values (scoring columns ``t``, ``pred_frame``, ``pred_t``, ``audio_env``,
    ``face_*``, ``mouth_open_*`` and each metric's ``per_frame()`` series, whose metric
    ``series_metric`` names). ``errors``: metric -> why it failed here. ``skipped``:
    metric -> why it did not run here. ``states``: per-clip states of mergeable metrics
    (``Metric.state()``). ``timings``: seconds per metric and per stage (``audio``,
    ``decode``, ``tracking``, ``crops``).
    """

    name: str
    pred: str
    ref: str | None
    audio_source: str = "none"
    status: str = "ok"
    error: str = ""
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    pred_frames: int = 0
    pred_fps: float = 0.0
    pred_size: tuple[int, int] = (0, 0)
    resampled: bool = False
    resized: bool = False
    notes: list[str] = field(default_factory=list)
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    series_metric: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class EvalResults:
    """Everything an evaluation produced; :mod:`avatarlab.metrics.report` writes it out.

    ``summary``: metric -> score -> value over all clips (``summary_method`` says how);
    ``clips``: one :class:`ClipResult` per pair, in name order; ``skipped``: metrics that
    did not run (everywhere, or for the clips listed); ``keys``: metric -> score -> its
    :class:`~avatarlab.metrics.base.Key` (which values are better); ``files``: output
    name -> path.
    """

    pred: str
    ref: str | None
    audio: str | None
    plan: PairPlan
    metrics: tuple[str, ...]
    conventions: dict[str, str]
    skipped: list[Skip]
    clips: list[ClipResult]
    summary: dict[str, dict[str, float]]
    summary_method: dict[str, str]
    keys: Mapping[str, Mapping[str, Key]] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    jobs: int = 1
    device: str = "cpu"
    seconds: float = 0.0
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[ClipResult]:
        """Clips that could not be evaluated at all."""
        return [c for c in self.clips if c.status != "ok"]

    def metric_errors(self) -> list[tuple[str, str, str]]:
        """``(clip, metric, message)`` for every metric that failed on a clip."""
        return [(c.name, m, msg) for c in self.clips for m, msg in c.errors.items()]

    def key(self, metric: str, score: str) -> Key | None:
        """How to read ``score`` of ``metric`` (None: not declared)."""
        return self.keys.get(metric, {}).get(score)

    def value(self, clip: str, key: str) -> float:
        """Per-clip value of score ``key`` (e.g. ``"psnr"``) for ``clip``; NaN if absent."""
        for c in self.clips:
            if c.name == clip:
                for values in c.values.values():
                    if key in values:
                        return values[key]
        return math.nan


__all__ = ["ClipResult", "EvalResults", "describe_error"]
