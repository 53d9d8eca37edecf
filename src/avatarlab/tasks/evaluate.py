"""Score generated videos against real ones: the ``evaluate`` task behind ``avatarlab eval``.

:class:`EvalOptions` holds every choice of a run (one field per ``eval`` flag) and
:func:`evaluate` hands it to :func:`avatarlab.metrics.evaluate.evaluate`, which pairs
the clips, scores them and writes tables, JSON and ``report.html``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avatarlab.errors import OptionError

if TYPE_CHECKING:
    from avatarlab.metrics.evaluate import EvalResults

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class EvalOptions:
    """What an evaluation computes and how.

    Attributes:
        metrics: comma-separated metric names, e.g. ``psnr,ssim,lse`` (``None``: every
            registered metric that can run).
        weights: checkpoints as ``name=path`` (checkpoint, file or metric name), e.g.
            ``syncnet_v2=syncnet_v2.model``; others are looked up in the cache folder.
        option: metric options as ``metric.key=value`` (value in JSON), e.g.
            ``psnr.y_channel=true``.
        jobs: worker processes over pairs (``None``: one per core; 1: in this process).
        device: torch device for neural metrics.
        max_plots: clips drawn in the report's per-clip plots (``None``: the report's
            default).
    """

    metrics: str | None = None
    weights: tuple[str, ...] = ()
    option: tuple[str, ...] = ()
    jobs: int | None = None
    device: str = "cpu"
    max_plots: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(self.weights))
        object.__setattr__(self, "option", tuple(self.option))
        if self.jobs is not None and self.jobs < 1:
            raise OptionError(f"jobs must be >= 1, got {self.jobs}")
        if self.max_plots is not None and self.max_plots < 0:
            raise OptionError(f"max_plots must be >= 0, got {self.max_plots}")


def evaluate(
    pred: PathLike,
    ref: PathLike | None = None,
    audio: PathLike | None = None,
    *,
    out_dir: PathLike,
    options: EvalOptions | None = None,
) -> EvalResults:
    """Evaluate ``pred`` against ``ref`` (files or folders matched by name) into ``out_dir``.

    ``audio`` is the driving speech (default: each video's own track). Metrics that
    cannot run or fail are recorded in the result (``skipped``, ``metric_errors()``),
    not raised; :func:`nothing_scored` says when no metric produced a value.

    Raises:
        OptionError: unknown metric, bad options, nothing to pair, unwritable ``out_dir``.
        MediaError: ``pred``/``ref``/``audio`` do not exist.
    """
    from avatarlab.metrics import evaluate as run

    options = options or EvalOptions()
    extra: dict[str, Any] = {} if options.max_plots is None else {"max_plots": options.max_plots}
    return run.evaluate(
        pred,
        ref,
        audio,
        metrics=options.metrics,
        out_dir=out_dir,
        jobs=options.jobs,
        weights=run.parse_weights(options.weights),
        device=options.device,
        metric_options=run.parse_metric_options(options.option),
        **extra,
    )


def nothing_scored(result: EvalResults) -> str | None:
    """Why no requested metric produced a value (every one failed or was skipped), else None."""
    if any(values for values in result.summary.values()):
        return None
    reasons = [f"{s.metric}: {s.reason}" for s in result.skipped]
    reasons += [f"{metric} on {clip}: {msg}" for clip, metric, msg in result.metric_errors()]
    why = "; ".join(reasons[:6]) or "no clip could be scored"
    return f"no metric produced a score ({why})"


__all__ = ["EvalOptions", "evaluate", "nothing_scored"]
