"""Summaries over clips: a mean of per-clip values, or one pooled set-level score.

Per-clip values are averaged over the clips where the metric ran (NaN values left
out, +inf kept, as the metric's own frame mean would). Mergeable metrics
(``Metric.mergeable``: FID, IS) are pooled instead: the clips' states are merged into
a fresh instance and its ``compute()`` is the summary.
"""

from __future__ import annotations

import math

import numpy as np

from avatarlab.metrics.planning import MetricPlan, Skip
from avatarlab.metrics.results import ClipResult, describe_error


def _clips(n: int) -> str:
    return f"{n} clip{'s' if n != 1 else ''}"


def summarize(
    results: list[ClipResult], plan: MetricPlan
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Summary per metric and how it was formed ("mean over N clips" or "pooled ...")."""
    summary: dict[str, dict[str, float]] = {}
    how: dict[str, str] = {}
    for spec in plan.specs:
        clips = [r for r in results if r.status == "ok" and spec.name in r.values]
        if not clips:
            continue
        if spec.mergeable:
            states = [r.states[spec.name] for r in clips if spec.name in r.states]
            total = spec.create()
            total.reset()
            for s in states:
                total.merge_state(s)
            pooled = f"pooled over {_clips(len(states))}"
            try:
                summary[spec.name] = {k: float(v) for k, v in total.compute().items()}
            except Exception as err:
                how[spec.name] = f"{pooled}: failed: {describe_error(err)}"
                continue
            how[spec.name] = pooled
            continue
        keys = list(dict.fromkeys(k for r in clips for k in r.values[spec.name]))
        out: dict[str, float] = {}
        for k in keys:
            vals = np.array([r.values[spec.name].get(k, math.nan) for r in clips], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            out[k] = float(vals.mean()) if vals.size else math.nan
        summary[spec.name] = out
        how[spec.name] = f"mean over {_clips(len(clips))}"
    return summary, how


def clip_skips(results: list[ClipResult]) -> list[Skip]:
    """Per-clip skips (e.g. no audio) grouped by metric and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for metric, reason in r.skipped.items():
            groups.setdefault((metric, reason), []).append(r.name)
    return [Skip(m, reason, clips=tuple(c)) for (m, reason), c in groups.items()]


__all__ = ["clip_skips", "summarize"]
