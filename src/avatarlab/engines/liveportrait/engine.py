"""The ``liveportrait`` engine: a portrait follows a driving face through LivePortrait.

``prepare`` finds the face with :mod:`avatarlab.face` (no InsightFace), crops it in
LivePortrait's convention (:mod:`.crop`), and runs F and M once on the 256 crop.
``reenact`` tracks the driving face, crops each frame in the driving convention, runs
M on batches of ``batch_size`` frames, moves the source keypoints by the pipeline's
relative (or absolute) motion (:func:`.keypoints.driven_keypoints`), applies
retargeting, stitching, lip normalisation and the multiplier (:func:`.keypoints.finish`),
decodes with W and G and pastes the 512 crop back with a feathered mask (pixels outside
it stay bit-identical). A source *video* is LivePortrait's video-to-video mode: ``prepare``
tracks its face and keeps each frame's crop; ``reenact`` runs F and M on each source frame
as it renders, so every frame keeps its own pose and expression and receives the driving
clip's change since its first frame (``ReenactOptions.loop``: a shorter source loops or
stops the output, as in the ``reenact`` engine). The reenact task calls it like every
motion engine.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from avatarlab.engines.base import Driver, Frame, Source
from avatarlab.engines.liveportrait import crop as C
from avatarlab.engines.liveportrait.options import DRIVING_SCALE, DRIVING_VY, LivePortraitOptions
from avatarlab.engines.reenact.driver import MotionDriver
from avatarlab.engines.reenact.options import ReenactOptions
from avatarlab.errors import MediaError, NoFaceError, OptionError

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


@dataclass(frozen=True)
class SourceFrame:
    """One source video frame's face: its frame -> 512 crop similarity ``(2, 3)`` and its
    eye-open ratios ``(2,)`` and lip-open ratio (as :class:`LivePortraitAvatar`'s)."""

    matrix: np.ndarray
    eyes: np.ndarray
    lips: float


@dataclass
class LivePortraitAvatar:
    """A portrait or source video analysed by :meth:`LivePortraitEngine.prepare`.

    For a video, the portrait fields describe its first frame with a face, and
    ``frames`` holds every frame's crop (F and M run on them while rendering: one
    frame's feature volume alone is 8 MB).

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
        video: the source video; ``None`` for a portrait.
        frames: per source video frame its face (``None`` where it has none).
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
    video: Path | None = None
    frames: list[SourceFrame | None] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return self.video is not None

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
        """Analyse a portrait (image file or RGB uint8 array) or a source video.

        Raises:
            NoFaceError: no face in the portrait, or in any frame of the video.
            MediaError: a video without frames.
            MissingWeightsError: a checkpoint file is missing or does not fit.
        """
        from avatarlab.face import face_mesh
        from avatarlab.face.boxes import check_frame

        if isinstance(source, np.ndarray):
            image, what = check_frame(source), "the image"
        else:
            from avatarlab.media import probe, read_image

            if not probe(source).is_image:
                return self._prepare_video(Path(os.fspath(source)))
            image, what = read_image(source), str(source)
        mesh = face_mesh(image)
        if mesh is None:
            raise NoFaceError(
                f"no face found in {what}: use a picture where one face is clearly visible"
            )
        return self._analyse(image, mesh)

    def _source_frame(self, mesh: np.ndarray) -> SourceFrame:
        from avatarlab.face import mesh_to_68

        o = self.options
        matrix = C.source_crop_matrix(mesh_to_68(mesh)[:, :2], o.crop_scale, o.crop_vy)
        return SourceFrame(matrix, C.eye_ratios(mesh), C.lip_ratio(mesh))

    def _analyse(self, image: np.ndarray, mesh: np.ndarray) -> LivePortraitAvatar:
        """F and M of one portrait (478-point ``mesh`` in its pixels), its ratios and crop."""
        from avatarlab.engines.liveportrait import keypoints as kpt

        models = self.models
        face = self._source_frame(mesh)
        x = self._tensor([C.model_input(C.warp_crop(image, face.matrix), area=True)])
        info = models.kp_info(x)
        x_s = kpt.transform_keypoint(info)
        lip_normal = None
        if self.options.normalize_lip and face.lips >= LIP_NORMALIZE_THRESHOLD:
            lip_normal = models.retarget_lip(x_s, x.new_tensor([[face.lips, 0.0]]))
        size = image.shape[1], image.shape[0]
        return LivePortraitAvatar(
            fps=25.0,
            frame_size=size if self.options.paste_back else (C.CROP_SIZE, C.CROP_SIZE),
            image=image,
            matrix=face.matrix,
            feature=models.feature(x),
            info=info,
            rotation=kpt.rotation_matrix(info["pitch"], info["yaw"], info["roll"]),
            x_s=x_s,
            eyes=face.eyes,
            lips=face.lips,
            lip_normal=lip_normal,
            notes=["crop: LivePortrait convention from the 478-point mesh (68 points)"],
        )

    def _prepare_video(self, path: Path) -> LivePortraitAvatar:
        """Track the source video's face and keep each frame's crop (video-to-video)."""
        from avatarlab.errors import describe_frames
        from avatarlab.face import FaceTracker
        from avatarlab.media import iter_frames, probe

        info = probe(path)
        frames: list[SourceFrame | None] = []
        first: tuple[np.ndarray, np.ndarray] | None = None
        with FaceTracker() as tracker:
            for frame, t in iter_frames(path):
                state = tracker.update(frame, t)
                frames.append(None if state is None else self._source_frame(state.landmarks))
                if state is not None and first is None:
                    first = frame, state.landmarks
        if not frames:
            raise MediaError(f"{path} has no frames: pass a video with a face")
        missing = [i for i, f in enumerate(frames) if f is None]
        if first is None:
            raise NoFaceError(
                f"no face found in any of the {len(frames)} frames of {path}: use a video "
                "where the face is visible",
                missing,
            )
        avatar = self._analyse(*first)
        avatar.fps, avatar.video, avatar.frames = float(info.fps), path, frames
        avatar.notes.append(f"source video: {len(frames)} frames, each keeps its own motion")
        if missing:
            avatar.notes.append(
                f"no face in source frames {describe_frames(missing)}: they are copied unchanged"
            )
        return avatar

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
        expression and pose, relative to the source's own (a video's first frame with a
        face), are held for its duration. A source video gives output frame ``i`` source
        frame ``i`` moved by the driving change; a shorter source loops or, with
        ``options.loop == "stop"``, ends the output.

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

        try:
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
                        if run.done:
                            break
                if pending and not run.done:
                    yield from run.frames(pending)
        finally:
            run.close()
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
        crop = C.model_input(C.warp_crop(image, box), area=False)
        n = driver.n_frames() or 1
        try:
            if not avatar.is_video:  # one still: render it once
                frame = next(run.frames([(crop, 0.0)]))
                for _ in range(n):
                    yield frame.copy()
                return
            for start in range(0, n, self.options.batch_size):
                k = min(self.options.batch_size, n - start)
                yield from run.frames([(crop, 0.0)] * k)
                if run.done:
                    return
        finally:
            run.close()

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


@dataclass
class _Sources:
    """The source side of a batch: F and M of each source frame with a face.

    A portrait has one row, shared by every output frame; a video batch has one row
    per output frame with a face (``rows[i]``: the row of output ``i``, ``None``: its
    source frame has no face and is copied). ``images``/``matrices`` give each
    output's source frame and crop (one entry for a portrait).
    """

    info: dict[str, Any]
    rotation: Any
    x_s: Any
    feature: Any
    lip_normal: Any
    offsets: Any
    images: list[np.ndarray]
    matrices: list[np.ndarray | None]
    rows: list[int | None] | None = None

    def row(self, i: int) -> int | None:
        return 0 if self.rows is None else self.rows[i]

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        k = 0 if self.rows is None else i
        return self.images[k], self.matrices[k]


class _Run:
    """Per-call state: the driving reference frame, smoothing, source frames, batched decode."""

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
        self.last: tuple[dict[str, Any], Any] | None = None  # last driving info, rotation
        self.done = False  # a source video ended with loop "stop"
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
        a = avatar
        self._video = self._video_frames() if a.is_video else None
        self._portrait = None
        if self._video is None:
            offsets = self._offsets(a.x_s, a.eyes[None], np.array([a.lips]))
            self._portrait = _Sources(
                a.info, a.rotation, a.x_s, a.feature, a.lip_normal, offsets, [a.image], [a.matrix]
            )

    def close(self) -> None:
        if self._video is not None:
            self._video.close()

    def _video_frames(self) -> Generator[tuple[np.ndarray, SourceFrame | None], None, None]:
        """The source video's frames with their faces, looped unless ``loop`` is "stop"."""
        from avatarlab.media import iter_frames

        a = self.avatar
        assert a.video is not None
        while True:
            for j, (frame, _) in enumerate(iter_frames(a.video)):
                if j >= len(a.frames):
                    break
                yield frame, a.frames[j]
            if self.options.loop == "stop":
                return

    def _offsets(self, x_s: Any, eyes: np.ndarray, lips: np.ndarray) -> Any:
        """Eye and lip retargeting deltas ``(B, 21, 3)`` for fixed targets (``eyes_open``,
        ``lips_open``), from source keypoints ``x_s (B, 21, 3)``, eye ratios ``(B, 2)`` and
        lip ratios ``(B,)``; ``None`` when neither is set."""
        o, models = self.options, self.engine.models
        total = None
        if o.eyes_open >= 0:
            target = o.eyes_open * eyes.mean(axis=1, keepdims=True)
            ratio = x_s.new_tensor(np.concatenate([eyes, target], axis=1))
            total = models.retarget_eye(x_s, ratio)
        if o.lips_open >= 0:
            wanted = np.full_like(lips, o.lips_open / MOUTH_WIDTH_CM)
            ratio = x_s.new_tensor(np.stack([lips, wanted], axis=1))
            delta = models.retarget_lip(x_s, ratio)
            total = delta if total is None else total + delta
        return total

    def _sources(self, n: int) -> _Sources:
        """The source side of the next ``n`` outputs (fewer when a "stop" video ends)."""
        if self._portrait is not None:
            return self._portrait
        import torch

        from avatarlab.engines.liveportrait import keypoints as kpt

        assert self._video is not None
        items: list[tuple[np.ndarray, SourceFrame | None]] = []
        for item in self._video:
            items.append(item)
            if len(items) == n:
                break
        else:
            self.done = True
        faced = [(frame, face) for frame, face in items if face is not None]
        rows: list[int | None] = []
        for _, face in items:
            rows.append(None if face is None else sum(r is not None for r in rows))
        images = [frame for frame, _ in items]
        matrices = [None if face is None else face.matrix for _, face in items]
        if not faced:
            return _Sources({}, None, None, None, None, None, images, matrices, rows)
        crops = [C.model_input(C.warp_crop(frame, f.matrix), area=True) for frame, f in faced]
        x = self.engine._tensor(crops)
        models = self.engine.models
        info = models.kp_info(x)
        x_s = kpt.transform_keypoint(info)
        eyes = np.stack([f.eyes for _, f in faced])
        lips = np.array([f.lips for _, f in faced])
        lip_normal = None
        if self.engine.options.normalize_lip:
            ratio = x.new_tensor(np.stack([lips, np.zeros_like(lips)], axis=1))
            close = torch.from_numpy(lips >= LIP_NORMALIZE_THRESHOLD).to(x)[:, None, None]
            lip_normal = models.retarget_lip(x_s, ratio) * close
        return _Sources(
            info,
            kpt.rotation_matrix(info["pitch"], info["yaw"], info["roll"]),
            x_s,
            models.feature(x),
            lip_normal,
            self._offsets(x_s, eyes, lips),
            images,
            matrices,
            rows,
        )

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
        """Rendered frames for a batch of driving crops (``None``: no face, hold).

        With a source video that ends (loop "stop"), fewer frames come back and
        :attr:`done` is set.
        """
        import torch

        from avatarlab.engines.liveportrait import keypoints as kpt

        o, models = self.options, self.engine.models
        src = self._sources(len(batch))
        batch = batch[: len(src.images)] if src.rows is not None else batch
        crops = [c for c, _ in batch if c is not None]
        infos = models.kp_info(self.engine._tensor(crops)) if crops else None
        stitching = models.stitching if self.engine.options.stitching else None
        xs: list[torch.Tensor | None] = []
        j = 0
        for i, (c, t) in enumerate(batch):
            if c is not None and infos is not None:
                info = {k: v[j : j + 1] for k, v in infos.items()}
                j += 1
                if self._filter is not None:
                    info = self._smooth(info, t)
                self.last = (info, kpt.rotation_matrix(info["pitch"], info["yaw"], info["roll"]))
                if self.first is None:
                    self.first = self.last
            r = src.row(i)
            if r is None or self.last is None or self.first is None:
                xs.append(None)  # no source face, or no driving face yet: the source as it is
                continue
            one = slice(r, r + 1)
            x_d = kpt.driven_keypoints(
                {k: v[one] for k, v in src.info.items()},
                src.rotation[one],
                *self.last,
                *self.first,
                o.region,
                o.relative,
                self.still,
                source_video=self.avatar.is_video,
            )
            lip_normal = None if o.lips_still or src.lip_normal is None else src.lip_normal[one]
            offsets = None if src.offsets is None else src.offsets[one]
            xs.append(kpt.finish(src.x_s[one], x_d, stitching, offsets, lip_normal, o.multiplier))
        todo = [i for i, x in enumerate(xs) if x is not None]
        images: dict[int, np.ndarray] = {}
        if todo:
            x_d = torch.cat([xs[i] for i in todo])  # type: ignore[misc]
            n = x_d.shape[0]
            if src.rows is None:
                feature, x_s = src.feature.expand(n, -1, -1, -1, -1), src.x_s.expand(n, -1, -1)
            else:
                idx = [src.rows[i] for i in todo]
                feature, x_s = src.feature[idx], src.x_s[idx]
            out = models.warp_decode(feature, x_s, x_d)["out"]
            pixels = (out.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            images = dict(zip(todo, pixels, strict=True))
        for i in range(len(batch)):
            yield self._compose(images.get(i), *src.image(i))

    def _compose(
        self, crop512: np.ndarray | None, image: np.ndarray, matrix: np.ndarray | None
    ) -> np.ndarray:
        """The output frame: ``crop512`` pasted into the source ``image`` (or alone)."""
        if not self.engine.options.paste_back:
            if crop512 is not None:
                return crop512
            # a source video frame without a face: the first face's crop of it
            return C.warp_crop(image, self.avatar.matrix if matrix is None else matrix)
        if crop512 is None or matrix is None:
            return image.copy()
        from avatarlab.face import paste_back

        return paste_back(image, crop512, matrix, feather=PASTE_FEATHER)
