"""The ``Metric`` base class, what a metric declares, its context, and the registry.

A metric sees a clip pair frame by frame (or whole clips), accumulates, and
``compute()`` returns a flat ``dict[str, float]``. Everything the evaluation runner
needs to know about a metric is a declared class attribute (no probing):

- ``name``: the registry name; ``keys``: every column ``compute()`` may return, with
  the direction that is better (:class:`Key`); ``conventions``: the one line the report
  prints (colour space, range, crop, filters...);
- ``requires``: a :class:`Requirements` (reference video, audio, face tracks, face
  crops, checkpoint names). A metric whose needs depend on its options sets
  ``self.requires`` in its constructor;
- ``per_clip``: ``update`` once per clip (with the clip's face crops when it requires
  ``crops``, which cost a second decoding pass), instead of per frame batch;
  ``mergeable``: ``state()``/``merge_state()`` pool the clips into one set-level score
  (FID, IS); ``pooled_only``: no per-clip value at all.

Adding a metric::

    @register_metric("sharpness")
    class Sharpness(Metric):
        name = "sharpness"
        keys = {"sharpness": HIGHER}
        conventions = "variance of the Laplacian of the gray frame, mean over frames"
        requires = Requirements(reference=False)
        ...

Built-in metrics are registered lazily (:data:`BUILTIN`), other packages through the
``avatarlab.metrics`` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.media import SPEECH_RATE
from avatarlab.registry import Registry

if TYPE_CHECKING:
    from avatarlab.face import FaceTrack


class Better(StrEnum):
    """Which values of a score are better."""

    HIGHER = "higher"
    LOWER = "lower"
    ZERO = "zero"  # closest to 0 (a signed offset)
    NONE = "none"  # informative (a count, a reference's own value)


_ARROWS = {Better.HIGHER: "↑", Better.LOWER: "↓", Better.ZERO: "→0", Better.NONE: ""}


@dataclass(frozen=True)
class Key:
    """How to read one output column of a metric.

    Attributes:
        better: the direction that is better.
        when: empty when ``compute()`` always returns the column; else the condition
            under which it does (e.g. ``"include_reference=True"``).
    """

    better: Better
    when: str = ""

    @property
    def arrow(self) -> str:
        """``↑`` (higher is better), ``↓`` (lower), ``→0`` (closest to zero) or ``""``."""
        return _ARROWS[self.better]

    def only(self, when: str) -> Key:
        """The same direction, for a column returned only ``when``."""
        return replace(self, when=when)


HIGHER = Key(Better.HIGHER)
LOWER = Key(Better.LOWER)
NEAR_ZERO = Key(Better.ZERO)
NEUTRAL = Key(Better.NONE)


@dataclass(frozen=True)
class Requirements:
    """What a metric needs from the evaluation.

    Attributes:
        reference: a ground-truth video aligned with the prediction.
        audio: the driving audio (16 kHz mono float32 in ``EvalContext.audio``).
        face_track: face tracks of the frames (``EvalContext.pred_track``/``ref_track``).
        crops: ``per_clip`` metrics only: the clip's ``(N, 224, 224, 3)`` face crops as
            ``update``'s frames (a second decoding pass of the clip); without it a
            per-clip ``update`` gets ``(N, 0, 0, 3)`` placeholders and reads the tracks.
        weights: checkpoint names in :mod:`avatarlab.weights`' registry.
    """

    reference: bool = True
    audio: bool = False
    face_track: bool = False
    crops: bool = False
    weights: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalContext:
    """Everything a metric may use besides the frames themselves.

    Attributes:
        fps: frame rate of the frames (the reference's timeline), frames per second.
        audio: ``(S,)`` float32 mono driving audio at ``sample_rate``; None without audio.
        sample_rate: rate of ``audio``, Hz.
        pred_track: the prediction's face track for the frames of this ``update`` (per
            frame batch, or the whole clip for ``per_clip`` metrics); None untracked.
        ref_track: the reference's face track, likewise.
        weights: checkpoint name -> resolved file path.
        device: torch device for neural metrics whose options leave it unset.
    """

    fps: float = 25.0
    audio: np.ndarray | None = None
    sample_rate: int = SPEECH_RATE
    pred_track: FaceTrack | None = None
    ref_track: FaceTrack | None = None
    weights: Mapping[str, str] = field(default_factory=dict)
    device: str = "cpu"


class Metric(ABC):
    """A metric family: declarations as class attributes, ``update`` then ``compute``.

    ``update(pred, ref, ctx)``: per frame batch, ``pred``/``ref`` are ``(B, H, W, 3)``
    uint8 RGB frames on the reference's pixel grid (``ref`` None without a reference)
    and the context's tracks cover those B frames; with ``per_clip``, once per clip
    with the whole tracks and, if ``requires.crops``, the clip's ``(N, 224, 224, 3)``
    face crops (SyncNet geometry), else ``(N, 0, 0, 3)`` placeholders.
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: Every column ``compute()`` may return, and which values are better.
    keys: ClassVar[Mapping[str, Key]] = {}
    #: One line stating colour space, range, crop, filters... (instances may add options).
    conventions: str = ""
    #: What the metric needs (instances whose needs depend on options override it).
    requires: Requirements = Requirements()
    #: True: ``update`` once per clip (face crops if ``requires.crops``); False: per batch.
    per_clip: ClassVar[bool] = False
    #: True: ``state()``/``merge_state()`` pool clips into one set-level summary.
    mergeable: ClassVar[bool] = False
    #: True (mergeable metrics only): no per-clip value, NaN under ``keys`` per clip.
    pooled_only: ClassVar[bool] = False

    @abstractmethod
    def reset(self) -> None:
        """Forget everything accumulated (the runner reuses instances across clips)."""

    @abstractmethod
    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        """Accumulate one frame batch (or one clip, with ``per_clip``)."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Scores over everything since ``reset``, keyed by names in ``keys``."""

    def notes(self, values: dict[str, float]) -> list[str]:
        """Lines for the clip's notes about ``values`` (this clip's ``compute()``), e.g.
        why a value is infinite; each names the metric's key. The report and the CLI
        print them. None by default."""
        return []

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-frame series of the last ``update`` (one value per frame of the batch; for
        a clip, N values or fewer from frame 0). None by default."""
        return {}

    def state(self) -> Any:
        """Mergeable metrics: the accumulated state (picklable and small: sums, not frames)."""
        raise NotImplementedError(f"metric {self.name!r} is not mergeable")

    def merge_state(self, state: Any) -> None:
        """Mergeable metrics: add another instance's ``state()`` to this one."""
        raise NotImplementedError(f"metric {self.name!r} is not mergeable")


def declaration_problems(cls: type, name: str) -> list[str]:
    """What ``cls`` fails to declare properly as the metric ``name`` (empty: nothing)."""
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        return [f"{cls!r} is not a subclass of avatarlab.metrics.base.Metric"]
    problems = []
    if cls.name != name:
        problems.append(f"name is {cls.name!r}, registered as {name!r}")
    if not cls.keys or not all(
        isinstance(k, str) and isinstance(v, Key) for k, v in cls.keys.items()
    ):
        problems.append("keys must map each output column to a Key (HIGHER, LOWER, ...)")
    if not isinstance(cls.conventions, str) or not cls.conventions.strip():
        problems.append("conventions must be a one-line description")
    elif "\n" in cls.conventions:
        problems.append("conventions must fit on one line")
    if not isinstance(cls.requires, Requirements):
        problems.append("requires must be a Requirements")
    elif cls.requires.crops and not cls.per_clip:
        problems.append("requires crops=True needs per_clip (frame batches carry whole frames)")
    flags = {"per_clip": cls.per_clip, "mergeable": cls.mergeable, "pooled_only": cls.pooled_only}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            problems.append(f"{flag} must be True or False")
    if cls.mergeable and (cls.state is Metric.state or cls.merge_state is Metric.merge_state):
        problems.append("mergeable metrics implement state() and merge_state()")
    if cls.pooled_only and not cls.mergeable:
        problems.append("pooled_only needs mergeable")
    return problems


#: Every metric by name.
METRICS: Registry[type[Metric]] = Registry("metric", entry_points="avatarlab.metrics")

#: Built-in metrics, imported on first lookup so listing names stays cheap.
BUILTIN = {
    "aed": "avatarlab.metrics.reenactment:AEDMetric",
    "akd": "avatarlab.metrics.reenactment:AKDMetric",
    "apd": "avatarlab.metrics.reenactment:APDMetric",
    "beat_align": "avatarlab.metrics.motion:BeatAlignMetric",
    "cpbd": "avatarlab.metrics.cpbd:CPBDMetric",
    "csim": "avatarlab.metrics.identity:CSIMMetric",
    "fid": "avatarlab.metrics.fid:FIDMetric",
    "head_diversity": "avatarlab.metrics.motion:HeadDiversityMetric",
    "is": "avatarlab.metrics.fid:ISMetric",
    "lmd": "avatarlab.metrics.lipsync:LMDMetric",
    "lpips": "avatarlab.metrics.perceptual:LPIPSMetric",
    "lse": "avatarlab.metrics.syncnet:LSEMetric",
    "ma": "avatarlab.metrics.lipsync:MouthAreaMetric",
    "mae": "avatarlab.metrics.quality:MAEMetric",
    "mse": "avatarlab.metrics.quality:MSEMetric",
    "niqe": "avatarlab.metrics.niqe:NIQEMetric",
    "psnr": "avatarlab.metrics.quality:PSNRMetric",
    "ssim": "avatarlab.metrics.quality:SSIMMetric",
}
for _name, _target in BUILTIN.items():
    METRICS.lazy(_name, _target)

M = TypeVar("M", bound=type[Metric])


def register_metric(name: str) -> Callable[[M], M]:
    """Class decorator: make a :class:`Metric` available by ``name``.

    Raises:
        TypeError: the class does not declare what a metric must (a programming error).
    """

    def deco(cls: M) -> M:
        problems = declaration_problems(cls, name)
        if problems:
            raise TypeError(f"metric {name!r}: {'; '.join(problems)}")
        METRICS.register(name, cls)
        return cls

    return deco


def metric_names() -> list[str]:
    """Names of all registered metrics, sorted."""
    return METRICS.names()


def create_metric(name: str, **options: Any) -> Metric:
    """An instance of metric ``name`` with constructor ``options``.

    Raises:
        OptionError: unknown metric, or options its constructor does not take.
    """
    cls = METRICS.get(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise OptionError(f"bad options {options} for metric {name!r}: {err}") from None


__all__ = [
    "BUILTIN",
    "HIGHER",
    "LOWER",
    "METRICS",
    "NEAR_ZERO",
    "NEUTRAL",
    "Better",
    "EvalContext",
    "Key",
    "Metric",
    "Requirements",
    "create_metric",
    "declaration_problems",
    "metric_names",
    "register_metric",
]
