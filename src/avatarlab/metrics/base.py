"""The metric protocol and the registry of metrics by name.

A metric sees a clip pair frame by frame (or whole clips), accumulates, and
``compute()`` returns a flat ``dict[str, float]``. Each metric declares what it
needs so the evaluation runner can skip it with a stated reason instead of
failing or silently omitting it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Requirements:
    """What a metric needs from the evaluation context."""

    reference: bool = True  # a ground-truth video aligned with the prediction
    audio: bool = False  # the driving audio (16 kHz mono float32)
    face_track: bool = False  # landmarks/crops from avatarlab.face's tracker
    weights: tuple[str, ...] = ()  # names in avatarlab.weights' registry
    # How the evaluation runner calls ``update``. False: on small batches while it streams
    # the pair (pred/ref: (B, H, W, 3) frames on the reference's pixel grid; with
    # face_track, ctx.pred_track/ref_track are B-frame tracks of those frames). True: once
    # per clip after tracking, pred/ref being the clip's (N, 224, 224, 3) face crops
    # (SyncNet geometry) and ctx holding the whole tracks. None: per clip when the metric
    # needs audio, or a face track but no reference (whole-clip statistics); else per frame.
    per_clip: bool | None = None


@dataclass
class EvalContext:
    """Everything a metric may use besides the frames themselves.

    ``pred_track``/``ref_track`` are :class:`avatarlab.face.FaceTrack` objects when
    the runner tracked faces; ``weights`` maps checkpoint names to resolved paths.
    """

    fps: float = 25.0
    audio: np.ndarray | None = None
    sample_rate: int = 16000
    pred_track: Any = None
    ref_track: Any = None
    weights: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """A metric family. ``update`` per frame or per clip, ``compute`` at the end.

    Optional methods the evaluation runner uses when present:

    - ``per_frame() -> dict[str, np.ndarray]``: per-frame series of the last ``update``
      (one value per frame of the batch; for a clip, N values or fewer from frame 0);
    - ``state() -> object`` and ``merge_state(state) -> None``: for set-level scores
      (FID, IS) that are not a mean over clips. ``state`` returns the accumulated state
      (picklable and small: sums, not frames); the runner merges the states of all clips
      into a fresh instance and reports its ``compute()`` as the summary. Without them
      the summary is the mean over clips of the per-clip ``compute()`` values.
    """

    name: str
    requires: Requirements
    conventions: str  # one line stating colour space, range, crop, filters...

    def reset(self) -> None: ...

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None: ...

    def compute(self) -> dict[str, float]: ...


_METRICS: dict[str, Callable[..., Metric]] = {}


def register_metric(name: str) -> Callable[[Callable[..., Metric]], Callable[..., Metric]]:
    """Class decorator: make a metric available by ``name`` to the runner and CLI."""

    def deco(factory: Callable[..., Metric]) -> Callable[..., Metric]:
        if name in _METRICS and _METRICS[name] is not factory:
            raise ValueError(f"metric {name!r} registered twice")
        _METRICS[name] = factory
        return factory

    return deco


def metric_names() -> list[str]:
    """Names of all registered metrics."""
    _load_builtin()
    return sorted(_METRICS)


def create_metric(name: str, **options: Any) -> Metric:
    """Instantiate a registered metric by name."""
    from avatarlab.errors import OptionError

    _load_builtin()
    try:
        factory = _METRICS[name]
    except KeyError:
        raise OptionError(
            f"unknown metric {name!r}; available: {', '.join(sorted(_METRICS))}"
        ) from None
    return factory(**options)


def _load_builtin() -> None:
    """Import the metric modules so their ``@register_metric`` decorators run."""
    import importlib
    import pkgutil

    import avatarlab.metrics as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name not in {"base", "runner", "report"}:
            importlib.import_module(f"avatarlab.metrics.{mod.name}")
