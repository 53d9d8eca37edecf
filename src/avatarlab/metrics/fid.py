"""FID and Inception Score with the standard FID Inception network (pytorch-fid).

Conventions:

- network: TensorFlow's Inception-v3 of 2015-12-05 as pytorch-fid ports it
  (``pt_inception-2015-12-05-6726825d.pth``, loaded from a user path or the weights
  cache, never downloaded);
- input: RGB uint8 frames scaled to [0, 1], resized to 299x299 bilinearly
  (``align_corners=False``, no antialiasing) and mapped to [-1, 1], as pytorch-fid's
  ``InceptionV3(resize_input=True, normalize_input=True)``;
- FID: pool3 features (2048-d) of every predicted and every reference frame; means and
  covariances accumulated in float64 (streaming sums, so clips need not stay in memory);
  Frechet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` with
  ``scipy.linalg.sqrtm`` and pytorch-fid's fallback (add 1e-6 to the diagonals when the
  product is singular; imaginary parts above 1e-3 on the diagonal are an error);
- IS: softmax over the 1008 logits computed without the final layer's bias (the
  original TensorFlow IS code, torch-fidelity's ``logits_unbiased``), samples shuffled
  with ``RandomState(2020)`` and cut into 10 splits as torch-fidelity does; mean and
  standard deviation of ``exp(E[KL(p(y|x) || p(y))])`` over splits. torch-fidelity
  resizes with its own TF-style bilinear filter, so its IS can differ slightly.

Both are dataset-level: ``update`` per batch or clip, ``compute`` once over everything
seen; ``state()`` / ``merge_state()`` let the evaluation runner pool clips evaluated in
separate processes.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import linalg

from avatarlab.errors import OptionError
from avatarlab.metrics._frames import as_batch
from avatarlab.metrics.base import (
    HIGHER,
    LOWER,
    NEUTRAL,
    EvalContext,
    Metric,
    Requirements,
    register_metric,
)
from avatarlab.weights import Checkpoint, load_into, register, register_architecture

if TYPE_CHECKING:
    from avatarlab.metrics._inception import FIDInceptionV3

FID_EPS = 1e-6
IS_SPLITS = 10
IS_SEED = 2020
BATCH_SIZE = 32
FEATURE_DIM = 2048


def _schema() -> dict[str, tuple[int, ...]]:
    from avatarlab.metrics._inception import inception_schema

    return inception_schema()


register_architecture("fid_inception_v3", _schema)
FID_INCEPTION = register(
    Checkpoint(
        name="fid_inception",
        filename="pt_inception-2015-12-05-6726825d.pth",
        description="FID Inception-v3 of pytorch-fid (FID and Inception Score metrics)",
        source=(
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth"
        ),
        architecture="fid_inception_v3",
        license="Apache-2.0 (pytorch-fid; weights ported from TensorFlow's Inception-v3)",
    )
)

_models: dict[tuple[str, str], FIDInceptionV3] = {}
_models_lock = threading.Lock()


def load_inception(path: str | Path | None = None, device: str = "cpu") -> FIDInceptionV3:
    """The FID Inception with the official weights (``path`` or the cache), shared per process.

    Raises ``MissingWeightsError`` naming ``pt_inception-2015-12-05-6726825d.pth`` and
    its download URL when the file is absent, ``CheckpointError`` when it is another file.
    """
    from avatarlab.metrics._inception import FIDInceptionV3
    from avatarlab.weights import resolve

    file = resolve(FID_INCEPTION.name, path)
    key = (str(file.resolve()), device)
    with _models_lock:
        if key not in _models:
            model = FIDInceptionV3()
            load_into(model, FID_INCEPTION.name, file, device=device)  # moves it in place
            _models[key] = model
        return _models[key]


def inception_outputs(
    frames: np.ndarray, model: FIDInceptionV3, batch_size: int = BATCH_SIZE, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Pool3 features ``(N, 2048)`` and bias-free logits ``(N, 1008)`` (float32) of RGB uint8 frames."""
    import torch

    batch = as_batch(frames, "frames")
    if batch.dtype != np.uint8:
        raise OptionError(f"Inception metrics take RGB uint8 frames, got {batch.dtype}")
    feats, logits = [], []
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(batch[start : start + batch_size]))
            x = chunk.to(device).permute(0, 3, 1, 2).float() / 255.0
            pool, logit = model(x)
            feats.append(pool.cpu().numpy())
            logits.append(logit.cpu().numpy())
    return np.concatenate(feats), np.concatenate(logits)


class GaussianStats:
    """Streaming mean and covariance of feature vectors, in float64.

    Features are kept as they come until they outnumber the dimension, then folded into
    sums (``sum x``, ``sum x x^T``): a clip's state stays a few MB (its features) while
    long runs stay at the fixed size of the sums.
    """

    def __init__(self, dim: int = FEATURE_DIM) -> None:
        self.dim = dim
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer: np.ndarray | None = None
        self.pending: list[np.ndarray] = []

    def add(self, feats: np.ndarray) -> None:
        x = np.asarray(feats, dtype=np.float32).reshape(-1, self.dim)
        self.pending.append(x)
        if sum(len(p) for p in self.pending) >= self.dim:
            self._fold()

    def _fold(self) -> None:
        if not self.pending:
            return
        x = np.concatenate(self.pending).astype(np.float64)
        self.pending = []
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        self.outer = x.T @ x if self.outer is None else self.outer + x.T @ x

    def merge(self, other: GaussianStats) -> None:
        """Add another accumulator's samples."""
        for x in other.pending:
            self.add(x)
        if other.n:
            self._fold()
            self.n += other.n
            self.sum += other.sum
            assert other.outer is not None
            self.outer = other.outer.copy() if self.outer is None else self.outer + other.outer

    @property
    def count(self) -> int:
        return self.n + sum(len(p) for p in self.pending)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` as ``np.mean(x, 0)``, ``np.cov(x, rowvar=False)`` (n - 1 normalised)."""
        self._fold()
        if self.n < 2 or self.outer is None:
            raise OptionError(f"FID needs at least 2 frames per side, got {self.n}")
        mu = self.sum / self.n
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = FID_EPS
) -> float:
    """Frechet distance between two Gaussians, as pytorch-fid computes it (float64)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise OptionError("the two Gaussians have different dimensions")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            biggest = np.max(np.abs(covmean.imag))
            raise OptionError(
                f"FID's matrix square root has an imaginary component {biggest:.3g}: the "
                "covariances are degenerate, evaluate on more frames"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def inception_score(
    logits: np.ndarray, splits: int = IS_SPLITS, shuffle: bool = True, seed: int = IS_SEED
) -> tuple[float, float]:
    """(mean, std) of the Inception Score of ``(N, C)`` logits, as torch-fidelity's ISC."""
    x = np.asarray(logits, dtype=np.float64)
    n = x.shape[0]
    if n < splits:
        raise OptionError(
            f"the Inception Score with {splits} splits needs >= {splits} frames, got {n}"
        )
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    log_p = x - x.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        q = p[part].mean(axis=0, keepdims=True)
        kl = (p[part] * (log_p[part] - np.log(q))).sum(axis=1).mean()
        scores.append(math.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


class _InceptionMetric(Metric):
    requires = Requirements(reference=True, weights=(FID_INCEPTION.name,))
    #: Set-level scores: the runner pools the clips' states and skips per-clip values
    #: (NaN under ``keys`` in the per-clip tables).
    mergeable = True
    pooled_only = True

    def __init__(
        self, weights: str | None = None, batch_size: int = BATCH_SIZE, device: str | None = None
    ) -> None:
        if batch_size < 1:
            raise OptionError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = weights
        self.batch_size = batch_size
        self.device = device
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def _outputs(self, frames: np.ndarray, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
        device = self.device or ctx.device
        model = load_inception(self.weights or ctx.weights.get(FID_INCEPTION.name), device)
        return inception_outputs(frames, model, self.batch_size, device)


@register_metric("fid")
class FIDMetric(_InceptionMetric):
    """FID between all predicted and all reference frames seen since ``reset``.

    ``ref_stats``: an ``.npz`` with ``mu`` and ``sigma`` (pytorch-fid's ``--save-stats``
    format) to compare against instead of reference frames.
    """

    name = "fid"
    keys = {"fid": LOWER}
    conventions = (
        "FID (pytorch-fid Inception pool3, 2048-d): RGB [0, 1] -> bilinear 299 -> [-1, 1]; "
        "float64 Frechet distance with scipy sqrtm, eps 1e-6 fallback; over all frames "
        "of all clips (pooled only: no per-clip value)"
    )

    def __init__(
        self,
        weights: str | None = None,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
        ref_stats: str | None = None,
    ) -> None:
        self.ref_stats = ref_stats
        super().__init__(weights, batch_size, device)
        if ref_stats is not None:
            self.requires = Requirements(reference=False, weights=(FID_INCEPTION.name,))

    def reset(self) -> None:
        self._pred = GaussianStats()
        self._ref = GaussianStats()

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        if ref is None and self.ref_stats is None:
            raise OptionError("FID compares with reference frames: pass a reference (or ref_stats)")
        self._pred.add(self._outputs(pred, ctx)[0])
        if self.ref_stats is None and ref is not None:
            self._ref.add(self._outputs(ref, ctx)[0])

    def state(self) -> tuple[GaussianStats, GaussianStats]:
        """The accumulated feature statistics (features or their sums), for pooling clips."""
        return self._pred, self._ref

    def merge_state(self, state: tuple[GaussianStats, GaussianStats]) -> None:
        self._pred.merge(state[0])
        self._ref.merge(state[1])

    def compute(self) -> dict[str, float]:
        if self._pred.count == 0:
            return {"fid": math.nan}
        mu1, s1 = self._pred.mean_cov()
        if self.ref_stats is not None:
            with np.load(self.ref_stats) as stats:
                mu2, s2 = stats["mu"], stats["sigma"]
        else:
            mu2, s2 = self._ref.mean_cov()
        return {"fid": frechet_distance(mu1, s1, mu2, s2)}


@register_metric("is")
class ISMetric(_InceptionMetric):
    """Inception Score of the predicted frames (10 splits); keeps 4 KB of logits per frame."""

    name = "is"
    keys = {"is": HIGHER, "is_std": NEUTRAL}
    requires = Requirements(reference=False, weights=(FID_INCEPTION.name,))
    conventions = (
        "IS: softmax of the FID Inception's 1008 bias-free logits, RandomState(2020) shuffle, "
        "10 splits (torch-fidelity), mean and std over splits; frames of all clips pooled "
        "(no per-clip value)"
    )

    def __init__(
        self,
        weights: str | None = None,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
        splits: int = IS_SPLITS,
    ) -> None:
        if splits < 1:
            raise OptionError(f"splits must be >= 1, got {splits}")
        self.splits = splits
        super().__init__(weights, batch_size, device)

    def reset(self) -> None:
        self._logits: list[np.ndarray] = []

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        self._logits.append(self._outputs(pred, ctx)[1])

    def state(self) -> list[np.ndarray]:
        """The logits seen so far (``(N, 1008)`` float32 per update), for pooling clips."""
        return list(self._logits)

    def merge_state(self, state: list[np.ndarray]) -> None:
        self._logits.extend(state)

    def compute(self) -> dict[str, float]:
        if not self._logits:
            return {"is": math.nan, "is_std": math.nan}
        mean, std = inception_score(np.concatenate(self._logits), self.splits)
        return {"is": mean, "is_std": std}


__all__ = [
    "FID_INCEPTION",
    "FIDMetric",
    "GaussianStats",
    "ISMetric",
    "frechet_distance",
    "inception_outputs",
    "inception_score",
    "load_inception",
]
