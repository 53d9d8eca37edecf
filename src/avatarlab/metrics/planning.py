"""Planning an evaluation: which metrics run, with which checkpoints, and why others cannot.

Every decision reads a metric's declarations (:class:`avatarlab.metrics.base.Metric`):
its ``requires`` (reference, audio, face tracks, crops, checkpoints), ``per_clip``,
``mergeable`` and ``conventions``. A metric that cannot run is a :class:`Skip` with
the reason, never silently left out; missing audio is decided per clip by the scoring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avatarlab.errors import MissingWeightsError, OptionError
from avatarlab.metrics.base import METRICS, Key, Metric, create_metric

if TYPE_CHECKING:
    from avatarlab.weights import Checkpoint


@dataclass(frozen=True)
class Skip:
    """A metric left out of the run (or out of some clips), with the reason.

    ``file``/``source``: the missing checkpoints' file names and official sources (a
    metric that needs several names every one that is absent, comma-separated).
    ``clips``: the clips it was skipped for (empty: every clip).
    """

    metric: str
    reason: str
    file: str = ""
    source: str = ""
    clips: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is created and fed in the workers (picklable).

    ``options``: constructor options, sorted; the flags copy the instance's
    declarations (``requires`` may depend on the options).
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    per_clip: bool = False
    reference: bool = True
    audio: bool = False
    face: bool = False
    crops: bool = False
    mergeable: bool = False

    def create(self) -> Metric:
        """A fresh instance of the metric with its options."""
        return create_metric(self.name, **dict(self.options))


@dataclass(frozen=True)
class MetricPlan:
    """Metrics that will run, metrics skipped up front, checkpoint paths, declarations.

    ``weights``: checkpoint name -> resolved path; ``conventions``: metric -> its line
    (for every chosen metric, skipped ones included); ``keys``: metric -> its output
    columns and their directions (running metrics).
    """

    specs: tuple[MetricSpec, ...]
    skipped: tuple[Skip, ...]
    weights: tuple[tuple[str, str], ...]
    conventions: tuple[tuple[str, str], ...]
    keys: tuple[tuple[str, Mapping[str, Key]], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)


def _checkpoint_name(key: str) -> str | None:
    """The checkpoint a weights key names (checkpoint name, its file name, or a metric
    that needs exactly one checkpoint), or None."""
    from avatarlab.weights import known_checkpoints

    for ck in known_checkpoints():
        if key in (ck.name, ck.filename):
            return ck.name
    if key in METRICS:
        needs = METRICS.get(key).requires.weights
        if len(needs) == 1:
            return needs[0]
    return None


def _checkpoint_key(key: str) -> str:
    """Map a weights key to a checkpoint name, or say which names it could be."""
    from avatarlab.weights import known_checkpoints

    name = _checkpoint_name(key)
    if name is None:
        METRICS.items()  # import every metric module: each registers its checkpoints
        name = _checkpoint_name(key)
    if name is None:
        known = ", ".join(c.name for c in known_checkpoints())
        raise OptionError(
            f"weights key {key!r} is neither a checkpoint ({known}) nor a metric that needs one"
        )
    return name


def normalize_weights(weights: Mapping[str, Any] | None) -> dict[str, str]:
    """Checkpoint name -> path for user weights keyed by checkpoint, file or metric name."""
    return {_checkpoint_key(key): str(path) for key, path in (weights or {}).items()}


def plan_metrics(
    names: Iterable[str] | None,
    has_reference: bool,
    weights: Mapping[str, Any] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> MetricPlan:
    """Decide which metrics run and why the others cannot.

    Args:
        names: metric names; None selects every registered metric.
        has_reference: whether the pairs have reference videos.
        weights: checkpoint paths keyed by checkpoint name, file name or metric name;
            checkpoints not given are looked up in the weights cache folder.
        options: constructor options per metric name.

    A metric is skipped (with its reason) when its checkpoint is not found (the reason
    names the file and its official source) or when it needs a reference and none was
    given.

    Raises:
        OptionError: unknown metric, options for a metric that does not run, bad
            options, or a weights key that names no checkpoint.
    """
    from avatarlab.weights import get_checkpoint, resolve

    available = METRICS.names()
    chosen = list(dict.fromkeys(names)) if names is not None else available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise OptionError(
            f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(available)}"
        )
    options = options or {}
    stray = sorted(set(options) - set(chosen))
    if stray:
        raise OptionError(f"options given for metrics that do not run: {', '.join(stray)}")
    user_weights = normalize_weights(weights)
    specs: list[MetricSpec] = []
    skipped: list[Skip] = []
    resolved: dict[str, str] = {}
    conventions: list[tuple[str, str]] = []
    keys: list[tuple[str, Mapping[str, Key]]] = []
    for name in chosen:
        metric = create_metric(name, **options.get(name, {}))
        req = metric.requires
        conventions.append((name, metric.conventions))
        absent: list[tuple[Checkpoint, str]] = []
        for ck_name in req.weights:
            try:
                resolved[ck_name] = str(resolve(ck_name, user_weights.get(ck_name)))
            except MissingWeightsError as err:
                absent.append((get_checkpoint(ck_name), str(err)))
        if absent:
            reason = "; ".join(
                f"needs the {ck.name} checkpoint (weights={{{ck.name!r}: PATH}}): {err}"
                for ck, err in absent
            )
            files = ", ".join(ck.filename for ck, _ in absent)
            sources = ", ".join(ck.source for ck, _ in absent)
            skipped.append(Skip(name, reason, files, sources))
            continue
        if req.reference and not has_reference:
            skipped.append(Skip(name, "needs a reference video: pass the real clips as ref"))
            continue
        keys.append((name, metric.keys))
        specs.append(
            MetricSpec(
                name=name,
                options=tuple(sorted(options.get(name, {}).items())),
                per_clip=metric.per_clip,
                reference=req.reference,
                audio=req.audio,
                face=req.face_track,
                crops=req.crops,
                mergeable=metric.mergeable,
            )
        )
    return MetricPlan(
        tuple(specs),
        tuple(skipped),
        tuple(sorted(resolved.items())),
        tuple(conventions),
        tuple(keys),
    )


__all__ = ["MetricPlan", "MetricSpec", "Skip", "normalize_weights", "plan_metrics"]
