"""Score generated talking-face videos against real ones: the ``evaluate`` entry point.

    from avatarlab.metrics.evaluate import evaluate
    res = evaluate("generated/", "real/", metrics=["psnr", "ssim", "lmd", "lse"],
                   weights={"syncnet_v2": "syncnet_v2.model"}, out_dir="results/")
    res.summary["psnr"]["psnr"], res.files["report.html"]

Pairs are matched by file name (:mod:`~avatarlab.metrics.pairing`), the metrics
planned from their declarations (:mod:`~avatarlab.metrics.planning`), each pair
streamed once (:mod:`~avatarlab.metrics.scoring`), the clips summarised
(:mod:`~avatarlab.metrics.summary`) and the outputs written by
:mod:`avatarlab.metrics.report`. Scripts that use ``jobs > 1`` need the usual
``if __name__ == "__main__":`` guard (the pool uses the ``spawn`` start method).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from avatarlab._outdir import output_lock, remove_owned_temps
from avatarlab._pool import default_workers
from avatarlab._util import make_output_folder
from avatarlab.errors import OptionError
from avatarlab.metrics.pairing import match_pairs
from avatarlab.metrics.planning import plan_metrics
from avatarlab.metrics.report import MAX_PLOTTED_CLIPS, OUTPUT_NAMES, write_outputs
from avatarlab.metrics.results import EvalResults
from avatarlab.metrics.scoring import ClipJob, run_clips
from avatarlab.metrics.summary import clip_skips, summarize

PathLike = str | os.PathLike[str]


def _metric_list(metrics: str | Iterable[str] | None) -> list[str] | None:
    if metrics is None:
        return None
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise OptionError("metrics is empty: name at least one metric, or None for all")
    return names


def parse_weights(items: Iterable[str]) -> dict[str, str]:
    """Weights given as text: ``name=path`` (checkpoint, file or metric name) or a bare path.

    A bare path is keyed by its file name, which matches the checkpoint whose official
    file name it is (e.g. ``syncnet_v2.model``).
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        if not name or not path:
            raise OptionError(f"weights {item!r}: use name=path, e.g. syncnet_v2=syncnet_v2.model")
        out[name.strip()] = os.path.expanduser(path.strip())
    return out


def parse_metric_options(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Metric options given as text, ``metric.key=value``; ``value`` is JSON (true, 4, "x")
    or a plain string."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = item.partition("=")
        metric, dot, key = target.partition(".")
        if not (sep and dot and metric and key):
            raise OptionError(f"option {item!r}: use metric.key=value, e.g. psnr.y_channel=true")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(metric.strip(), {})[key.strip()] = value
    return out


def evaluate(
    pred: PathLike,
    ref: PathLike | None = None,
    audio: PathLike | None = None,
    metrics: str | Iterable[str] | None = None,
    out_dir: PathLike = "results",
    jobs: int | None = None,
    weights: Mapping[str, PathLike] | None = None,
    device: str = "cpu",
    metric_options: Mapping[str, Mapping[str, Any]] | None = None,
    max_plots: int = MAX_PLOTTED_CLIPS,
) -> EvalResults:
    """Evaluate predictions against references and write tables, JSON and an HTML report.

    Args:
        pred: a generated video, or a folder of them.
        ref: the matching real video, or a folder matched by file stem (None: only
            no-reference metrics run).
        audio: driving audio for every pair, or a folder matched by stem; default: the
            prediction's own audio track, else the reference's.
        metrics: names (list or "a,b,c"); None: every registered metric that can run.
        out_dir: folder for ``per_video``/``per_frame`` tables (Parquet + CSV),
            ``results.json`` and ``report.html``.
        jobs: worker processes over pairs (None: one per core, at most one per pair;
            1: in this process).
        weights: checkpoint paths keyed by checkpoint name (``syncnet_v2``), its file
            name or the metric's name (``lse``); others are looked up in the cache folder.
        device: torch device for neural metrics.
        metric_options: constructor options per metric, e.g. ``{"psnr": {"y_channel": True}}``.
        max_plots: clips drawn in the report's per-clip plots.

    Returns:
        :class:`~avatarlab.metrics.results.EvalResults`; ``files`` lists what was written.
        Metrics that cannot run (missing checkpoint, reference or audio) are listed in
        ``skipped`` with the reason; clips or metrics that fail are recorded, not raised.

    Raises:
        OptionError: unknown metric, bad options, nothing to pair, or ``out_dir`` cannot
            be created or written (checked before any clip is scored).
        MediaError: ``pred``/``ref``/``audio`` do not exist.
    """
    start = time.perf_counter()
    if jobs is not None and jobs < 1:
        raise OptionError(f"jobs must be >= 1, got {jobs}")
    out = make_output_folder(out_dir, create=False)  # a wrong -o fails before any scoring
    pairs = match_pairs(pred, ref, audio)
    plan = plan_metrics(_metric_list(metrics), ref is not None, weights, metric_options)
    make_output_folder(out)
    # One run per folder: a second eval into it fails at once instead of mixing files;
    # the temporaries of a killed run (SIGKILL) go before this one writes.
    with output_lock(out, "eval"):
        remove_owned_temps(out / name for name in OUTPUT_NAMES)
        clip_jobs = [ClipJob(p, plan.specs, plan.weights, device) for p in pairs.pairs]
        workers = min(jobs or default_workers(), max(1, len(clip_jobs)))
        results = run_clips(clip_jobs, workers) if plan.specs else []
        summary, how = summarize(results, plan)
        er = EvalResults(
            pred=str(pred),
            ref=None if ref is None else str(ref),
            audio=None if audio is None else str(audio),
            plan=pairs,
            metrics=plan.names,
            conventions=dict(plan.conventions),
            skipped=[*plan.skipped, *clip_skips(results)],
            clips=results,
            summary=summary,
            summary_method=how,
            keys=dict(plan.keys),
            weights=dict(plan.weights),
            jobs=workers,
            device=device,
            out_dir=out,
        )
        er.seconds = time.perf_counter() - start
        er.files = write_outputs(er, out, max_plots)
        return er


__all__ = ["EvalResults", "evaluate", "parse_metric_options", "parse_weights"]
