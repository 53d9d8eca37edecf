"""The metric contract, run over every registered metric: a new metric is tested by
being registered.

Each metric must declare everything on its class (name, keys with directions, one
line of conventions, requirements, per_clip, mergeable), and ``compute()`` on a tiny
synthetic pair must return its declared keys (those without a ``when`` condition at
least, nothing undeclared). Metrics that need a checkpoint are checked, with an empty
weights cache, for a skip whose reason names the checkpoint, its file and its source.
"""

from __future__ import annotations

import importlib
import math
import pkgutil

import numpy as np
import pytest

import avatarlab.metrics as metrics_pkg
from avatarlab.face import FaceTrack
from avatarlab.metrics.base import (
    BUILTIN,
    HIGHER,
    METRICS,
    EvalContext,
    Key,
    Metric,
    Requirements,
    create_metric,
    declaration_problems,
    register_metric,
)
from avatarlab.metrics.crops import CROP_SIZE
from avatarlab.metrics.planning import plan_metrics

FPS = 25.0
RATE = 16000
FRAMES = 8  # per-frame batch (two NIQE blocks a side at 192x192)
CLIP_FRAMES = 50  # per-clip metrics: 2 s of face crops and audio
SIZE = 192

NAMES = METRICS.names()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "empty_cache"))


def _frames(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random RGB frames ``(n, size, size, 3)`` uint8 with texture (edges, blur)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (size, size))
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        noise = rng.normal(0, 6, base.shape)
        out[i] = np.clip(np.roll(base, i, axis=1) + noise, 0, 255).astype(np.uint8)
    return out


def _track(n: int, size: int, seed: int) -> FaceTrack:
    """A face track of ``n`` frames: a mesh of 478 points that moves, turns and talks."""
    rng = np.random.default_rng(seed)
    centre = np.array([size / 2, size / 2, 0.0])
    mesh = centre + rng.normal(0, size / 8, (478, 3))
    t = np.arange(n)
    sway = np.stack([3 * np.sin(t / 4), 2 * np.cos(t / 5), np.zeros(n)], axis=1)
    landmarks = mesh[None] + sway[:, None] + rng.normal(0, 0.5, (n, 478, 3))
    pose = np.stack([5 * np.sin(t / 6), 3 * np.cos(t / 7), np.sin(t / 3)], axis=1)
    lo, hi = landmarks[..., :2].min(1), landmarks[..., :2].max(1)
    return FaceTrack(
        timestamps=t / FPS,
        found=np.ones(n, bool),
        boxes=np.concatenate([lo, hi], axis=1).astype(np.float32),
        landmarks=landmarks.astype(np.float32),
        pose=pose.astype(np.float32),
        frame_size=(size, size),
    )


def _update(metric: Metric) -> None:
    """One update as the scoring feeds it: a frame batch; or a clip of face crops
    (``requires.crops``), or of ``(N, 0, 0, 3)`` placeholders, with whole tracks."""
    n, size = (CLIP_FRAMES, CROP_SIZE) if metric.per_clip else (FRAMES, SIZE)
    t = np.arange(int(n / FPS * RATE)) / RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    ctx = EvalContext(
        fps=FPS,
        audio=audio if metric.requires.audio else None,
        sample_rate=RATE,
        pred_track=_track(n, size, 1),
        ref_track=_track(n, size, 2),
    )
    ref = _frames(n, size, 4)
    pred = np.clip(ref.astype(int) + 9, 0, 255).astype(np.uint8)
    if metric.per_clip and not metric.requires.crops:
        pred = ref = np.empty((n, 0, 0, 3), np.uint8)
    metric.update(pred, ref if metric.requires.reference else None, ctx)


def test_every_builtin_module_registers_what_the_lazy_table_lists():
    """``BUILTIN`` lists each built-in metric (lazy, cheap names); no module registers one
    it does not list."""
    for mod in pkgutil.iter_modules(metrics_pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"avatarlab.metrics.{mod.name}")
    assert set(BUILTIN) <= set(METRICS.names())
    for name, target in BUILTIN.items():
        module, _, attr = target.partition(":")
        assert METRICS.get(name) is getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", NAMES)
def test_metric_declares_everything(name):
    cls = METRICS.get(name)
    assert declaration_problems(cls, name) == []
    assert all(isinstance(k, Key) for k in cls.keys.values())
    metric = cls()
    assert isinstance(metric.requires, Requirements)
    assert metric.conventions.strip() and "\n" not in metric.conventions
    assert metric.per_clip is cls.per_clip and metric.mergeable is cls.mergeable
    if metric.per_clip:  # per-clip metrics read the clip's crops, tracks or audio
        assert metric.requires.crops or metric.requires.audio or metric.requires.face_track
    else:  # frame batches carry whole frames, never crops
        assert not metric.requires.crops


@pytest.mark.parametrize("name", NAMES)
def test_compute_returns_the_declared_keys(name, empty_cache):
    metric = create_metric(name)
    needs = metric.requires.weights
    if needs:
        (skip,) = plan_metrics([name], has_reference=True).skipped
        from avatarlab.weights import get_checkpoint, package_file

        # every absent file named at once (an installed package may still ship one)
        ckpts = [ck for ck in map(get_checkpoint, needs) if package_file(ck) is None]
        assert skip.metric == name and skip.file == ", ".join(ck.filename for ck in ckpts)
        assert skip.source == ", ".join(ck.source for ck in ckpts)
        for ck in ckpts:
            assert f"the {ck.name} checkpoint" in skip.reason and ck.filename in skip.reason
        return
    plan = plan_metrics([name], has_reference=True)
    assert plan.names == (name,) and dict(plan.keys)[name] == metric.keys
    metric.reset()
    _update(metric)
    values = metric.compute()
    declared = set(metric.keys)
    always = {k for k, key in metric.keys.items() if not key.when}
    assert always <= set(values) <= declared, (set(values), declared)
    assert all(isinstance(v, float) for v in values.values())
    assert any(math.isfinite(v) for v in values.values()), values
    n = CLIP_FRAMES if metric.per_clip else FRAMES
    for col, series in metric.per_frame().items():
        assert np.asarray(series).ndim == 1 and len(series) <= n, col
    metric.reset()
    after_reset = metric.compute()
    assert set(after_reset) <= declared


def test_registering_an_incomplete_metric_is_refused():
    class Bare(Metric):
        name = "_bare"

        def reset(self) -> None: ...

        def update(self, pred, ref, ctx) -> None: ...

        def compute(self) -> dict[str, float]:
            return {}

    with pytest.raises(TypeError, match="keys must map.*conventions must"):
        register_metric("_bare")(Bare)

    class Misnamed(Bare):
        keys = {"x": HIGHER}
        conventions = "x"
        mergeable = True

    with pytest.raises(TypeError, match="registered as '_other'.*state\\(\\) and merge_state"):
        register_metric("_other")(Misnamed)

    class CropsPerBatch(Bare):
        keys = {"x": HIGHER}
        conventions = "x"
        requires = Requirements(crops=True)

    with pytest.raises(TypeError, match="crops=True needs per_clip"):
        register_metric("_crops")(CropsPerBatch)
    with pytest.raises(TypeError, match="not a subclass"):
        register_metric("_plain")(type("Plain", (), {}))
    assert not {"_bare", "_other", "_crops", "_plain"} & set(METRICS.names())
