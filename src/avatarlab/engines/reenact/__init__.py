"""Reenactment engines: a portrait or a video follows a driving face.

The interface every reenact engine keeps (the ``reenact`` task calls only this)::

    engine = get_engine("reenact")                       # or another reenact engine
    avatar = engine.prepare(source)                      # portrait or source video
    frames = engine.reenact(avatar, driver, options, notes)
    # -> Iterator[Frame]: RGB uint8 (H, W, 3) at the source's size, one per driving
    #    frame (a video or live driver) or duration * fps frames (an image driver)

- ``driver`` is a :class:`MotionDriver`: ``video=`` a driving clip, ``image=`` one
  expression to hold (with blinks), or ``live=`` frames as they arrive (a camera);
  engines read it with ``driver.frames()`` / ``driver.image_frame()``.
- ``options`` is a :class:`ReenactOptions` (region, multiplier, relative/absolute,
  eye and lip retargeting, smoothing; audio, loop and crf are the task's).
- ``notes`` (a list, optional) receives one-line remarks: driving frames without a
  face (the last pose is held), clamped head rotations.
- Motion is relative to the driving clip's first frame, so output frame 0
  reproduces the source (except lips that part wider there than the source's: the
  mouth moves relative to a closed one); an engine is causal (one frame in, one
  frame out), so the same call serves a webcam.
- Engines declare ``drives = "motion"``: their ``render(avatar, driver)`` takes a
  :class:`MotionDriver` (a speech driver raises ``OptionError``) and
  ``render_stream(avatar, frames)`` takes camera frames instead of audio chunks.

Built in: ``reenact`` (:mod:`.engine`, training-free: the driving change in canonical
space (:mod:`.transfer`) warps the source (:mod:`.render`)). :mod:`.scores` holds the
benchmark's opening correlations (AKD, APD and AED are metrics:
:mod:`avatarlab.metrics.reenactment`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab._lazy import lazy_exports
from avatarlab.engines.reenact.driver import MotionDriver
from avatarlab.engines.reenact.options import FaceReenactOptions, ReenactOptions

if TYPE_CHECKING:
    from avatarlab.engines.reenact.engine import ReenactAvatar, ReenactEngine

_LAZY = {"ReenactAvatar": ".engine", "ReenactEngine": ".engine"}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["FaceReenactOptions", "MotionDriver", "ReenactAvatar", "ReenactEngine", "ReenactOptions"]
