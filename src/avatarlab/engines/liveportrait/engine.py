"""The ``liveportrait`` engine: a portrait follows a driving face through LivePortrait.

``prepare`` finds the face with :mod:`avatarlab.face` (no InsightFace), crops it in
LivePortrait's convention (:mod:`.crop`), and runs F and M once on the 256 crop.
``reenact`` tracks the driving face, crops each frame in the driving convention, runs
M on batches of ``batch_size`` frames, moves the source keypoints by the pipeline's
relative (or absolute) motion (:func:`.keypoints.driven_keypoints`), applies
retargeting, stitching, lip normalisation and the multiplier (:func:`.keypoints.finish`),
decodes with W and G and pastes the 512 crop back with a feathered mask (pixels outside
it stay bit-identical). The reenact task calls it like every motion engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from avatarlab.engines.base import Driver, Frame, Source
from avatarlab.engines.liveportrait import crop as C
from avatarlab.engines.liveportrait.options import DRIVING_SCALE, DRIVING_VY, LivePortraitOptions
from avatarlab.engines.reenact.driver import MotionDriver
from avatarlab.engines.reenact.options import ReenactOptions
from avatarlab.errors import NoFaceError, OptionError

if TYPE_CHECKING:
    import torch

    from avatarlab.engines.liveportrait.model import LivePortraitModels

LIP_NORMALIZE_THRESHOLD = 0.03
"""``inference_config.lip_normalize_threshold``: lips more open than this are closed first."""
MOUTH_WIDTH_CM = 5.0
"""Mouth width used to turn ``lips_open`` (cm of inner-lip gap) into LivePortrait's ratio."""
PASTE_FEATHER = 0.1
"""Soft edge of the paste-back mask, share of the 512 crop (our stand-in for the
reference's ``mask_template.png``)."""
_KP_KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale")


@dataclass
class LivePortraitAvatar:
    """A portrait analysed by :meth:`LivePortraitEngine.prepare`.

    Attributes:
        fps: output rate for a driver without its own (a video keeps its rate).
        frame_size: ``(width, height)`` of every output frame (the portrait, or the
            512 crop without paste-back).
        image: the portrait, RGB uint8.
        matrix: ``(2, 3)`` frame -> 512 crop similarity.
        feature: F of the crop ``(1, 32, 16, 64, 64)``.
        info: M's refined keypoint info of the crop; ``rotation`` its ``(1, 3, 3)``.
        x_s: the source keypoints ``(1, 21, 3)`` (Eqn. 2).
        eyes: the portrait's eye-open ratios ``(2,)``; ``lips`` its lip-open ratio.
        lip_normal: keypoint offsets that close the source's lips, or ``None``.
    """

    fps: float
    frame_size: tuple[int, int]
    image: np.ndarray
    matrix: np.ndarray
    feature: Any
    info: dict[str, Any]
    rotation: Any
    x_s: Any
    eyes: np.ndarray
    lips: float
    lip_normal: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return False

    def describe(self) -> list[str]:
        """What the engine chose."""
        return list(self.notes)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"device {name!r} asked for but CUDA is not available here: use cpu")
    return name


class LivePortraitEngine:
    """LivePortrait (human model) reenactment with the official weights.

    >>> engine = LivePortraitEngine(LivePortraitOptions(checkpoint="weights/liveportrait"))
    >>> avatar = engine.prepare("portrait.jpg")                          # doctest: +SKIP
    >>> frames = engine.reenact(avatar, MotionDriver(video="drive.mp4"))  # doctest: +SKIP
    """

    name = "liveportrait"
    Options = LivePortraitOptions
    still_only: ClassVar[frozenset[str]] = frozenset()
    drives: ClassVar[str] = "motion"

    def __init__(
        self, options: LivePortraitOptions | None = None, models: LivePortraitModels | None = None
    ) -> None:
        self.options = options or LivePortraitOptions()
        self._models = models

    @property
    def models(self) -> LivePortraitModels:
        """The networks, loaded on first use (strict checks, one-line errors)."""
        if self._models is None:
            import torch

            from avatarlab.engines.liveportrait.model import LivePortraitModels

            if self.options.threads:
                torch.set_num_threads(self.options.threads)
            self._models = LivePortraitModels.load(
                self.options.checkpoint, _device(self.options.device)
            )
        return self._models

    def _tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        import torch

        batch = np.stack(crops).astype(np.float32) / 255.0
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.models.device)

    # -- prepare -----------------------------------------------------------------
    def prepare(self, source: Source) -> LivePortraitAvatar:
        """Analyse a portrait (image file or RGB uint8 array).

        Raises:
            NoFaceError: no face in the portrait.
            OptionError: a video source (this engine animates portraits).
            MissingWeightsError: a checkpoint file is missing or does not fit.
        """
        from avatarlab.face import face_mesh, mesh_to_68
        from avatarlab.face.boxes import check_frame

        if isinstance(source, np.ndarray):
            image, what = check_frame(source), "the image"
        else:
            from avatarlab.media import probe, read_image

            if not probe(source).is_image:
                raise OptionError(
                    f"{os.fspath(source)} is a video: the liveportrait engine animates a "
                    "portrait; use engine reenact for a source video"
                )
            image, what = read_image(source), str(source)
        mesh = face_mesh(image)
        if mesh is None:
            raise NoFaceError(
                f"no face found in {what}: use a picture where one face is clearly visible"
            )
        from avatarlab.engines.liveportrait import keypoints as kpt

        models = self.models
        o = self.options
        matrix = C.source_crop_matrix(mesh_to_68(mesh)[:, :2], o.crop_scale, o.crop_vy)
        x = self._tensor([C.model_input(C.warp_crop(image, matrix), area=True)])
        info = models.kp_info(x)
        x_s = kpt.transform_keypoint(info)
        lips = C.lip_ratio(mesh)
        lip_normal = None
        if o.normalize_lip and lips >= LIP_NORMALIZE_THRESHOLD:
            lip_normal = models.retarget_lip(x_s, x.new_tensor([[lips, 0.0]]))
        size = image.shape[1], image.shape[0]
        return LivePortraitAvatar(
            fps=25.0,
            frame_size=size if o.paste_back else (C.CROP_SIZE, C.CROP_SIZE),
            image=image,
            matrix=matrix,
            feature=models.feature(x),
            info=info,
            rotation=kpt.rotation_matrix(info["pitch"], info["yaw"], info["roll"]),
            x_s=x_s,
            eyes=C.eye_ratios(mesh),
            lips=lips,
            lip_normal=lip_normal,
            notes=["crop: LivePortrait convention from the 478-point mesh (68 points)"],
        )

    # -- reenact -----------------------------------------------------------------
    def reenact(
        self,
        avatar: LivePortraitAvatar,
        driver: MotionDriver,
        options: ReenactOptions | None = None,
        notes: list[str] | None = None,
    ) -> Iterator[Frame]:
        """Frames (RGB uint8, ``avatar.frame_size``): one per driving frame.

        Motion is relative to the first driving frame with a face (frames before it
        reproduce the source; a lost face holds the last motion). An image driver's
        expression and pose, relative to the source's own, are held for its duration.

        Raises:
            NoFaceError: no face in the driving image, or in any driving frame.
        """
        options = options or ReenactOptions()
        if driver.is_image:
            yield from self._hold_image(avatar, driver, options)
            return
        run = _Run(self, avatar, options)
        lost: list[int] = []
        found = False
        from avatarlab.face import FaceTracker, mesh_to_68

        with FaceTracker() as tracker:
            pending: list[tuple[np.ndarray | None, float]] = []
            for i, (frame, t) in enumerate(driver.frames()):
                state = tracker.update(frame, t)
                if state is None:
                    lost.append(i)
                    pending.append((None, t))
                else:
                    found = True
                    if run.box is None:
                        run.box = C.driving_crop_matrix(
                            mesh_to_68(state.landmarks)[:, :2], DRIVING_SCALE, DRIVING_VY
                        )
                    crop = C.model_input(C.warp_crop(frame, run.box), area=False)
                    pending.append((crop, t))
                if len(pending) >= self.options.batch_size:
                    yield from run.frames(pending)
                    pending = []
            if pending:
                yield from run.frames(pending)
        if not found:
            raise NoFaceError(
                f"no face in any of the {len(lost)} frames of the driving clip: drive with a "
                "clip where a face is visible",
                lost,
            )
        if notes is not None and lost:
            from avatarlab.errors import describe_frames

            notes.append(
                f"no face in driving frames {describe_frames(lost)}: the last motion is held"
            )

    def _hold_image(
        self, avatar: LivePortraitAvatar, driver: MotionDriver, options: ReenactOptions
    ) -> Iterator[Frame]:
        from avatarlab.face import mesh_to_68

        image, mesh = driver.image_mesh()
        box = C.driving_crop_matrix(mesh_to_68(mesh)[:, :2], DRIVING_SCALE, DRIVING_VY)
        run = _Run(self, avatar, options, first=(avatar.info, avatar.rotation))
        run.box = box
        frame = next(run.frames([(C.model_input(C.warp_crop(image, box), area=False), 0.0)]))
        for _ in range(driver.n_frames() or 1):
            yield frame.copy()

    # -- the engine protocol -------------------------------------------------------
    def render(self, avatar: LivePortraitAvatar, driver: Driver | MotionDriver) -> Iterator[Frame]:
        """:meth:`reenact` with default controls; a speech driver is refused."""
        if not isinstance(driver, MotionDriver):
            raise OptionError(
                "the liveportrait engine follows a driving face, not speech: use reenact "
                "(--driving VIDEO), or speak with the warp engine"
            )
        return self.reenact(avatar, driver)

    def render_stream(
        self, avatar: LivePortraitAvatar, chunks: Iterable[np.ndarray], sample_rate: int = 0
    ) -> Iterator[list[Frame]]:
        """Camera frames in (RGB uint8), one rendered frame out per frame."""

        def frames() -> Iterator[np.ndarray]:
            for chunk in chunks:
                if np.ndim(chunk) != 3:
                    raise OptionError(
                        "the liveportrait engine streams camera frames (H, W, 3), not audio"
                    )
                yield chunk

        for frame in self.reenact(avatar, MotionDriver(live=frames())):
            yield [frame]


class _Run:
    """Per-call state: the driving reference frame, smoothing, and the batched decode."""

    def __init__(
        self,
        engine: LivePortraitEngine,
        avatar: LivePortraitAvatar,
        options: ReenactOptions,
        first: tuple[dict[str, Any], Any] | None = None,
    ) -> None:
        from avatarlab.engines.liveportrait import keypoints as kpt

        self.engine = engine
        self.avatar = avatar
        self.options = options
        self.box: np.ndarray | None = None
        self.first = first
        self.last: Any = None
        self._filter = None
        if options.smoothing > 0:
            from avatarlab.face import OneEuroFilter

            cutoff = 10.0 ** (1.0 - 1.5 * options.smoothing)  # as the reenact engine: 10 .. 0.3 Hz
            self._filter = OneEuroFilter(min_cutoff=cutoff, beta=0.3, d_cutoff=1.0)
        still: list[int] = []
        if options.eyes_open >= 0:
            still += kpt.EYE_KEYPOINTS
        if options.lips_still or options.lips_open >= 0:
            still += kpt.LIP_KEYPOINTS
        self.still = tuple(still)
        self.offsets = self._offsets()

    def _offsets(self) -> Any:
        """Eye and lip retargeting deltas for fixed targets (``eyes_open``, ``lips_open``)."""
        a, o, models = self.avatar, self.options, self.engine.models
        total = None
        if o.eyes_open >= 0:
            target = o.eyes_open * float(a.eyes.mean())
            ratio = a.x_s.new_tensor([[float(a.eyes[0]), float(a.eyes[1]), target]])
            total = models.retarget_eye(a.x_s, ratio)
        if o.lips_open >= 0:
            ratio = a.x_s.new_tensor([[a.lips, o.lips_open / MOUTH_WIDTH_CM]])
            delta = models.retarget_lip(a.x_s, ratio)
            total = delta if total is None else total + delta
        return total

    def _smooth(self, info: dict[str, Any], t: float) -> dict[str, Any]:
        import torch

        assert self._filter is not None
        flat = torch.cat([info[k].reshape(-1) for k in _KP_KEYS]).cpu().numpy().astype(np.float64)
        out = torch.from_numpy(self._filter(flat, t)).to(info["exp"])
        smoothed, at = dict(info), 0
        for k in _KP_KEYS:
            n = info[k].numel()
            smoothed[k] = out[at : at + n].reshape(info[k].shape)
            at += n
        return smoothed

    def frames(self, batch: list[tuple[np.ndarray | None, float]]) -> Iterator[np.ndarray]:
        """Rendered frames for a batch of driving crops (``None``: no face, hold)."""
        import torch

        from avatarlab.engines.liveportrait import keypoints as kpt

        a, o, models = self.avatar, self.options, self.engine.models
        crops = [c for c, _ in batch if c is not None]
        infos = models.kp_info(self.engine._tensor(crops)) if crops else None
        xs: list[torch.Tensor | None] = []
        j = 0
        for c, t in batch:
            if c is None or infos is None:
                xs.append(self.last)
                continue
            info = {k: v[j : j + 1] for k, v in infos.items()}
            j += 1
            if self._filter is not None:
                info = self._smooth(info, t)
            rot = kpt.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
            if self.first is None:
                self.first = (info, rot)
            x_d = kpt.driven_keypoints(
                a.info,
                a.rotation,
                info,
                rot,
                self.first[0],
                self.first[1],
                o.region,
                o.relative,
                self.still,
            )
            lip_normal = None if o.lips_still else a.lip_normal
            stitching = models.stitching if self.engine.options.stitching else None
            self.last = kpt.finish(a.x_s, x_d, stitching, self.offsets, lip_normal, o.multiplier)
            xs.append(self.last)
        todo = [i for i, x in enumerate(xs) if x is not None]
        images: dict[int, np.ndarray] = {}
        if todo:
            x_d = torch.cat([xs[i] for i in todo])  # type: ignore[misc]
            n = x_d.shape[0]
            out = models.warp_decode(
                a.feature.expand(n, -1, -1, -1, -1), a.x_s.expand(n, -1, -1), x_d
            )["out"]
            pixels = (out.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            images = dict(zip(todo, pixels, strict=True))
        for i in range(len(batch)):
            yield self._compose(images.get(i))

    def _compose(self, crop512: np.ndarray | None) -> np.ndarray:
        a = self.avatar
        if not self.engine.options.paste_back:
            return crop512 if crop512 is not None else C.warp_crop(a.image, a.matrix)
        if crop512 is None:
            return a.image.copy()
        from avatarlab.face import paste_back

        return paste_back(a.image, crop512, a.matrix, feather=PASTE_FEATHER)
