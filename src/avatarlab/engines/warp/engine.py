"""The ``warp`` engine: make a portrait or a video speak by deforming the real face.

``prepare`` finds the face mesh (a portrait) or tracks it through a video,
fits the rig (:mod:`.rig`) to every source frame and gathers mouth interiors
(:mod:`.mouth`). ``render`` turns each frame's mouth parameters (from
:mod:`avatarlab.speech`) into mesh offsets, warps the face piecewise-affinely
(:mod:`.field`), draws the interior between the parted lips, and for portraits
adds blinks (:mod:`.lids`), prosody-driven head motion, brow raises on pitch
accents and a slowly changing smile (:mod:`.motion`, :mod:`.prosody`); the neck
and clothes below the jaw line stay still. No training, no weights; about
real time on one CPU core at 512x512.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from avatarlab._util import track_progress
from avatarlab.engines.base import Driver, Frame, Source, register_engine
from avatarlab.engines.warp import field as fld
from avatarlab.engines.warp import topology as tp
from avatarlab.engines.warp.lids import LidLayer
from avatarlab.engines.warp.motion import BlinkSchedule, HeadMotion, HeadOffset
from avatarlab.engines.warp.mouth import (
    EDGE_SOFTNESS_PX,
    FaceColours,
    MouthGeometry,
    MouthTexture,
    cavity_colour,
    fill_missing_teeth,
    portrait_texture,
    render_interior,
    synthetic_texture,
    texture_from_frame,
)
from avatarlab.engines.warp.options import LoopMode, WarpOptions
from avatarlab.engines.warp.prosody import StreamingProsody
from avatarlab.engines.warp.rig import FaceRig, Pose
from avatarlab.errors import MediaError, NoFaceError, OptionError
from avatarlab.face import topology as T
from avatarlab.media import SPEECH_RATE

LIBRARY_BIN_CM = 0.15
"""Video mouth interiors are kept one per opening bin of this width."""
LIBRARY_RANGE_CM = (0.3, 2.4)
HEAD_BLOB = (1.0, 1.6)
"""Head motion moves everything inside this many head radii fully, fading to none at the second."""
_MIN_GAP_CM = 0.02
"""Openings below this draw no interior."""


@dataclass
class SourceFace:
    """One source frame's face: its rig and the warp vertices (``tp.N_VERTICES``), pixels.

    ``lids``: its closed-eyelid layer, built from the source image on the first blink.
    ``pinned``: the vertices with the ring raised above the collar, built on the first frame.
    """

    rig: FaceRig
    vertices: np.ndarray
    face_width: float
    lids: LidLayer | None = field(default=None, repr=False)
    pinned: np.ndarray | None = field(default=None, repr=False)

    @staticmethod
    def from_mesh(mesh: np.ndarray) -> SourceFace:
        rig = FaceRig(mesh)
        head = rig.source
        ring = head[list(T.FACE_OVAL)].copy()
        ring[:, :2] = tp.RING_CENTRE + tp.RING_SCALE * (ring[:, :2] - tp.RING_CENTRE)
        ring_px = rig.frame.to_pixels(ring)[:, :2]
        points = np.asarray(mesh, np.float64)[:, :2]
        vertices = np.vstack([points[: tp.N_FACE], ring_px, points[list(tp.EYE_OPENING)]])
        width = float(np.linalg.norm(vertices[234] - vertices[454]))
        return SourceFace(rig, vertices, width)


@dataclass
class HeadWarp:
    """Soft head motion of a portrait (precomputed grids).

    Output pixel ``p`` samples ``p + w(p) (A^-1 p - p) - D(p) (yaw, pitch)``: roll, shift
    and scale (the affine ``A``) move the head as a whole, yaw and pitch move each pixel by
    its depth in front of the neck's axis (``D``, pixels, from the mesh's z, spread
    smoothly beyond the face), so the nose travels further than the outline. The weight
    ``w`` is 1 on the head and fades to exactly 0 within :data:`JAW_FADE` face heights
    below the chin (distance below or beside the lower face outline; wider beside the
    cheeks, where there is room above the collar) and beyond
    :data:`HEAD_BLOB` head radii: the neck, collar and clothes stay bit-identical
    while the head turns.
    """

    region: fld.Region
    xs: np.ndarray  # (H, W) float32 pixel x
    ys: np.ndarray
    weight: np.ndarray  # (H, W) float32
    pivot: np.ndarray  # (2,) rotation centre (neck)
    face_width: float
    depth: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """(H, W) float32: ``w(p) D(p)``, pixels of travel per radian of yaw or pitch."""

    @staticmethod
    def around(points: np.ndarray, frame_shape: tuple[int, ...]) -> HeadWarp:
        mesh = np.asarray(points, np.float64)
        pts = mesh[:, :2]
        top, chin = pts[T.FOREHEAD], pts[T.CHIN]
        width = float(np.linalg.norm(pts[234] - pts[454]))
        height = float(np.linalg.norm(chin - top))
        centre = 0.5 * (top + chin) - 0.15 * (chin - top)
        axes = np.array([0.85 * width, 0.8 * height])
        reach = HEAD_BLOB[1]
        jaw_x, jaw_y = jaw_line(pts)
        band = JAW_FADE * height
        lo = centre - reach * axes
        bottom = min(centre[1] + reach * axes[1], jaw_y.max() + band)
        hi = np.array([centre[0] + reach * axes[0], bottom])
        region = fld.Region.around(np.array([lo, hi]), frame_shape, pad=0)
        ys, xs = np.mgrid[region.y0 : region.y1, region.x0 : region.x1].astype(np.float32)
        r = np.hypot((xs - centre[0]) / axes[0], (ys - centre[1]) / axes[1])
        t = np.clip((r - HEAD_BLOB[0]) / (reach - HEAD_BLOB[0]), 0.0, 1.0)
        below = np.interp(xs[0], jaw_x, jaw_y)[None, :]  # jaw line y per column
        # distance (pixels) below or beside the head, not straight down: where the jaw
        # line climbs steeply to the ears, a column-wise fade would step from 1 to 0
        # between neighbouring columns and tear the cheek from the background. The fade
        # is JAW_FADE face heights under the chin and widens with the room above the
        # collar, so a roll does not shear the cheeks against the background either.
        outside = (ys > below).astype(np.uint8)
        dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        room = np.maximum(jaw_y.max() + band - ys, max(band, 1e-6))
        u = np.clip(dist / room, 0.0, 1.0)
        weight = ((1.0 - t * t * (3.0 - 2.0 * t)) * (1.0 - u * u * (3.0 - 2.0 * u))).astype(
            np.float32
        )
        pivot = chin + 0.25 * (chin - top)
        depth = np.zeros_like(weight)
        if mesh.shape[1] > 2:  # yaw and pitch fade out from the nose tip to the jaw line,
            # so the chin does not shear against the still neck; over at least
            # DEPTH_FADE face heights, so beside the face (where the jaw line's ends sit
            # at ear level, above the nose) the fade is no step that would tear the hair
            nose = float(pts[T.NOSE_TIP, 1])
            span = np.maximum(below - nose, DEPTH_FADE * height)
            v = np.clip((ys - nose) / span, 0.0, 1.0)
            depth = _depth_field(mesh, region, width) * weight * (1.0 - v * v * (3.0 - 2.0 * v))
        return HeadWarp(region, xs, ys, weight, pivot, width, depth.astype(np.float32))

    def apply(self, image: np.ndarray, offset: HeadOffset) -> np.ndarray:
        """``image`` with the head moved by ``offset`` (a new array)."""
        if offset.is_zero or self.region.empty:
            return image
        forward = offset.matrix(self.pivot, self.face_width)
        inv = cv2.invertAffineTransform(forward).astype(np.float32)
        w, xs, ys = self.weight, self.xs, self.ys
        mx = xs + w * (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] - xs)
        my = ys + w * (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] - ys)
        if offset.yaw and self.depth.size:
            mx -= np.float32(np.radians(offset.yaw)) * self.depth
        if offset.pitch and self.depth.size:
            my -= np.float32(np.radians(offset.pitch)) * self.depth
        out = image.copy()
        r = self.region
        out[r.y0 : r.y1, r.x0 : r.x1] = cv2.remap(
            image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return out


DEPTH_FADE = 0.25
"""Shortest fade (face heights) of the yaw and pitch travel below the nose tip."""
JAW_FADE = 0.09
"""Head motion fades from full at the jaw line to none this many face heights below it
(the collar check asks for no motion beyond 0.1 face heights below the chin)."""


def jaw_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower face outline (ear to chin to ear) as ascending x and its y, pixels."""
    pts = np.asarray(points, np.float64)[:, :2]
    oval = pts[list(T.FACE_OVAL)]
    ears = 0.5 * (pts[234, 1] + pts[454, 1])
    lower = oval[oval[:, 1] >= ears]
    order = np.argsort(lower[:, 0])
    return lower[order, 0], lower[order, 1]


def _depth_field(mesh: np.ndarray, region: fld.Region, width: float) -> np.ndarray:
    """``(H, W)`` depth of each pixel in front of the ears' plane (pixels, >= 0).

    Linear over the face mesh, spread smoothly outwards beyond it (hair moves with the
    forehead, the cheeks' edge with the outline), zero at the ears' depth.
    """
    from scipy.interpolate import LinearNDInterpolator

    face = mesh[: tp.N_FACE]
    z0 = 0.5 * (mesh[234, 2] + mesh[454, 2])
    d = np.maximum(z0 - face[:, 2], 0.0)
    h, w = region.height, region.width
    ys, xs = np.mgrid[region.y0 : region.y1, region.x0 : region.x1].astype(np.float64)
    inside = LinearNDInterpolator(face[:, :2], d)(xs, ys)
    known = np.isfinite(inside)
    values = np.where(known, inside, 0.0).astype(np.float32)
    mask = known.astype(np.float32)
    sigma = 0.25 * width
    spread = cv2.GaussianBlur(values, (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(mask, (0, 0), sigma), 1e-6
    )
    full = np.where(known, values, spread).astype(np.float32)
    out = cv2.GaussianBlur(full, (0, 0), 0.03 * width)
    return out.reshape(h, w)


@dataclass
class WarpAvatar:
    """A source analysed by :meth:`WarpEngine.prepare`.

    Attributes:
        fps: output frame rate (a portrait's option, or the video's own rate).
        frame_size: ``(width, height)`` of the source and of every output frame.
        faces: per source frame, its :class:`SourceFace` (``None`` where no face was found).
        textures: mouth interiors, ascending by the opening they came from.
        image: the portrait, RGB uint8 ``(H, W, 3)``; ``None`` for a video.
        video: the video file; ``None`` for a portrait.
        timestamps: ``(N,)`` seconds of the video's frames.
        head: head-motion warp for a portrait.
        step: field grid spacing in pixels (from ``crop_size``).
        rest_jaw: ``jaw_open`` of the portrait's own mouth at rest (0 for closed lips or
            a video), capped at :data:`REST_JAW_MAX`; pauses return to it.
    """

    fps: float
    frame_size: tuple[int, int]
    faces: list[SourceFace | None]
    textures: list[MouthTexture]
    image: np.ndarray | None = None
    video: Path | None = None
    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    head: HeadWarp | None = None
    step: float = 1.0
    teeth_source: str = "synthetic"
    rest_jaw: float = 0.0

    @property
    def is_video(self) -> bool:
        return self.video is not None

    def describe(self) -> list[str]:
        """What the engine chose: where the mouth interior comes from."""
        return [f"mouth interior: {self.teeth_source}"]

    @property
    def n_source_frames(self) -> int:
        return len(self.faces)


REST_JAW_MAX = 0.25
"""Widest rest pose (``jaw_open``) a portrait keeps from its own parted lips: a photo
taken mid-vowel rests with the lips a little apart, not wide open."""
MID_SPEECH_JAW = 1.0
"""A portrait whose lips are parted wider than the widest vowel of the viseme table
(``jaw_open`` 1) was caught mid-word: its lips tell nothing about how the speaker rests,
so pauses close the lips (the table's rest) instead. On the shared clips whose first
frame is such (hdtf_aoc_8s, talk_c: 1.6), the real speaker's lips are near-closed
(inner gap < 0.02 face height) in 27-38 % of pause frames; parted rest gave 0 %."""


def _is_image_source(source: Source) -> bool:
    if isinstance(source, np.ndarray):
        return True
    from avatarlab.media import probe

    return bool(probe(source).is_image)


def _pose_from_params(row: np.ndarray, columns: dict[str, int], blink: float) -> Pose:
    return Pose(
        jaw_open=float(row[columns["jaw_open"]]),
        lip_spread=float(row[columns["lip_spread"]]),
        lip_closed=float(row[columns["lip_closed"]]),
        upper_lip_raise=float(row[columns["upper_lip_raise"]]),
        teeth=float(row[columns["teeth"]]),
        blink=blink,
    )


@register_engine("warp")
class WarpEngine:
    """Training-free talking heads: deform the source face with its own landmarks.

    >>> engine = WarpEngine(WarpOptions(head_motion=0.3))
    >>> avatar = engine.prepare("portrait.jpg")            # doctest: +SKIP
    >>> frames = engine.render(avatar, Driver(text="Hi"))  # doctest: +SKIP
    """

    name = "warp"
    Options = WarpOptions
    still_only = frozenset({"fps", "head_motion", "blink_rate", "teeth"})
    drives = "speech"

    def __init__(self, options: WarpOptions | None = None) -> None:
        self.options = options or WarpOptions()

    # -- prepare -----------------------------------------------------------------
    def prepare(self, source: Source) -> WarpAvatar:
        """Analyse a portrait (image file or RGB array) or a video file.

        Raises:
            NoFaceError: no face in the portrait, or in no frame of the video.
            MediaError: unreadable source.
        """
        if _is_image_source(source):
            return self._prepare_image(source)
        return self._prepare_video(Path(os.fspath(source)))  # type: ignore[arg-type]

    def _step(self, face_width: float) -> float:
        return max(1.0, face_width / (0.5 * self.options.crop_size))

    def _prepare_image(self, source: Source) -> WarpAvatar:
        from avatarlab.face import face_mesh
        from avatarlab.face.boxes import check_frame
        from avatarlab.media import read_image

        image = check_frame(source) if isinstance(source, np.ndarray) else read_image(source)
        mesh = face_mesh(image)
        if mesh is None:
            what = "the image" if isinstance(source, np.ndarray) else str(source)
            raise NoFaceError(
                f"no face found in {what}: use a picture where one face is clearly visible "
                "(frontal or three-quarter, at least about 80 pixels wide)"
            )
        face = SourceFace.from_mesh(mesh)
        texture, kind = portrait_texture(image, mesh, face.rig.frame.scale, self.options.teeth)
        return WarpAvatar(
            fps=self.options.fps,
            frame_size=(image.shape[1], image.shape[0]),
            faces=[face],
            textures=[texture],
            image=image,
            head=HeadWarp.around(mesh, image.shape),
            step=self._step(face.face_width),
            teeth_source=kind,
            rest_jaw=self._rest_jaw(face),
        )

    def _rest_jaw(self, face: SourceFace) -> float:
        """``jaw_open`` that renders the portrait's own lip parting (capped), 0 if closed
        or caught mid-word (:data:`MID_SPEECH_JAW`)."""
        scale = self.options.expressiveness
        own = face.rig.source_jaw_open
        if scale <= 0.0 or own > MID_SPEECH_JAW:
            return 0.0
        return min(own, REST_JAW_MAX) / scale

    def _prepare_video(self, path: Path) -> WarpAvatar:
        from avatarlab.face import FaceTracker
        from avatarlab.media import iter_frames, probe

        info = probe(path)
        faces: list[SourceFace | None] = []
        times: list[float] = []
        library: dict[int, tuple[float, MouthTexture]] = {}  # bin -> (|yaw|, texture)
        colours: FaceColours | None = None
        widths: list[float] = []
        frames = iter_frames(path)
        total = info.n_frames or None
        with FaceTracker() as tracker:
            for frame, t in track_progress(frames, "tracking face", total=total):
                state = tracker.update(frame, t)
                times.append(t)
                if state is None:
                    faces.append(None)
                    continue
                face = SourceFace.from_mesh(state.landmarks)
                faces.append(face)
                widths.append(face.face_width)
                if colours is None:
                    colours = FaceColours.sample(frame, state.landmarks)
                geometry = MouthGeometry.from_points(state.landmarks, face.rig.frame.scale)
                gap = geometry.gap()
                if not LIBRARY_RANGE_CM[0] <= gap <= LIBRARY_RANGE_CM[1]:
                    continue
                key = int(gap // LIBRARY_BIN_CM)
                yaw = abs(float(state.pose.yaw)) if state.pose is not None else 90.0
                if key not in library or yaw < library[key][0]:
                    library[key] = (yaw, texture_from_frame(frame, geometry, colours.cavity))
        if not times:
            raise MediaError(f"{path} has no frames: pass a video with a face")
        if colours is None:
            raise NoFaceError(
                f"no face found in any of the {len(times)} frames of {path}: use a video where "
                "the speaker's face is visible",
                list(range(len(times))),
            )
        textures = [library[k][1] for k in sorted(library)]
        if textures:
            # Borrowed interiors with teeth in shadow or hidden get painted teeth there,
            # and one shared cavity no darker than the face's painted one: no black slot.
            cavity = cavity_colour(textures[-1], colours.cavity)
            textures = [
                MouthTexture(t.upper, t.lower, cavity, t.half_width, t.gap)
                for t in (fill_missing_teeth(t, colours)[0] for t in textures)
            ]
            kind = "video"
        else:
            first = next(f for f in faces if f is not None)
            textures = [synthetic_texture(colours, first.rig.mouth_half_width)]
            kind = "synthetic"
        return WarpAvatar(
            fps=float(info.fps),
            frame_size=(int(info.width), int(info.height)),
            faces=faces,
            textures=textures,
            video=path,
            timestamps=np.asarray(times, np.float64),
            step=self._step(float(np.median(widths))),
            teeth_source=kind,
        )

    # -- render ------------------------------------------------------------------
    def render(self, avatar: WarpAvatar, driver: Driver) -> Iterator[Frame]:
        """Frames (RGB uint8, source size) at ``avatar.fps`` speaking ``driver``.

        One frame per mouth-track row: ``ceil(duration * fps)`` frames. Pauses return
        to the portrait's own mouth (:attr:`WarpAvatar.rest_jaw`).
        """
        from avatarlab.speech import with_rest_pose

        speech = driver.analyse(avatar.fps)
        mouth = with_rest_pose(speech.mouth, avatar.rest_jaw)
        session = _Session(self, avatar)
        session.hear(speech.audio16k, last=True)
        try:
            for row in mouth.params:
                yield session.frame(row)
        finally:
            session.close()

    def render_pose(self, avatar: WarpAvatar, pose: Pose) -> Frame:
        """One frame of a portrait in ``pose`` (mouth, lids, brows, smile), without head motion.

        For previews, contact sheets and checks of single shapes (a full blink, a wide
        vowel); :meth:`render` is the way to animate.

        Raises:
            OptionError: ``avatar`` was prepared from a video.
        """
        if avatar.is_video or avatar.image is None:
            raise OptionError("render_pose needs a portrait avatar; use render() for a video")
        face = avatar.faces[0]
        assert face is not None
        return _Session(self, avatar).deform(avatar.image, face, pose)

    def render_stream(
        self, avatar: WarpAvatar, audio_chunks: Iterable[np.ndarray], sample_rate: int
    ) -> Iterator[list[Frame]]:
        """Live form of :meth:`render`: float32 mono chunks in, frames per chunk out.

        Mouth parameters come from the acoustic streaming analysis
        (:class:`avatarlab.speech.StreamingMouth`), whose look-ahead is 62 ms, so a
        frame is ready about 100 ms of audio after its time plus render time.
        """
        from avatarlab.speech import StreamingMouth, with_rest_pose

        mouth = StreamingMouth(sample_rate=sample_rate, fps=avatar.fps)
        session = _Session(self, avatar, sample_rate)
        rest = avatar.rest_jaw
        try:
            for chunk in audio_chunks:
                rows = with_rest_pose(mouth.push(chunk), rest).params
                session.hear(chunk)
                yield [session.frame(row) for row in rows]
            session.hear(np.zeros(0, np.float32), last=True)
            yield [session.frame(row) for row in with_rest_pose(mouth.flush(), rest).params]
        finally:
            session.close()


class _Session:
    """Per-render state: source frame order, blinks, head motion, chosen interior."""

    def __init__(
        self, engine: WarpEngine, avatar: WarpAvatar, sample_rate: int = SPEECH_RATE
    ) -> None:
        from avatarlab.speech import MOUTH_PARAMS

        self.options = engine.options
        self.avatar = avatar
        self.columns = {name: i for i, name in enumerate(MOUTH_PARAMS)}
        self.index = 0
        portrait = not avatar.is_video
        seed = self.options.seed
        self.blinks = BlinkSchedule(self.options.blink_rate if portrait else 0.0, avatar.fps, seed)
        self.motion = HeadMotion(self.options.head_motion if portrait else 0.0, avatar.fps, seed)
        moving = self.motion.amount > 0
        self.prosody = StreamingProsody(avatar.fps, sample_rate) if moving else None
        self.triangles = tp.warp_triangles()
        self.texture_index = len(avatar.textures) - 1
        self._frames: Iterator[tuple[np.ndarray, int]] | None = (
            _video_frames(avatar, self.options.loop) if avatar.is_video else None
        )

    def close(self) -> None:
        if self._frames is not None and hasattr(self._frames, "close"):
            self._frames.close()

    def _source(self) -> tuple[np.ndarray, SourceFace | None]:
        if self._frames is None:
            assert self.avatar.image is not None
            return self.avatar.image, self.avatar.faces[0]
        frame, j = next(self._frames)
        return frame, self.avatar.faces[j]

    def hear(self, audio: np.ndarray, last: bool = False) -> None:
        """Audio (at the session's rate) up to the frames about to be rendered: the
        prosody that drives head motion (:mod:`.prosody`)."""
        if self.prosody is not None:
            self.prosody.push(audio, last)

    def frame(self, params: np.ndarray) -> Frame:
        """Render the next output frame for one row of mouth parameters."""
        blink = self.blinks.closure(self.index)
        prosody = self.prosody.frame(self.index) if self.prosody is not None else None
        self.index += 1
        pose = _pose_from_params(params, self.columns, blink)
        offset = self.motion.step(pose.jaw_open * (1.0 - pose.lip_closed), prosody)
        face_life = self.motion.expression
        if face_life.brow_raise or face_life.smile:
            pose = replace(pose, brow_raise=face_life.brow_raise, smile=face_life.smile)
        image, face = self._source()
        if face is None:
            return image.copy()
        out = self.deform(image, face, pose)
        if self.avatar.head is not None:
            out = self.avatar.head.apply(out, offset)
        return out

    def deform(self, image: np.ndarray, face: SourceFace, pose: Pose) -> np.ndarray:
        """``image`` with ``face`` deformed into ``pose``, the mouth interior and the lids drawn.

        The mesh warp moves the mouth, brows and cheeks; a blink is the lid layer (:mod:`.lids`) drawn
        over the untouched eyes, so the lid keeps the portrait's texture instead of
        stretching its skin down over the eye. The ring below the jaw is raised to
        :data:`JAW_FADE` face heights below the chin (:func:`~.topology.raise_ring`), so
        the collar stays as still under the mouth as under head motion.
        """
        if face.pinned is None:
            pts = face.vertices
            height = float(np.linalg.norm(pts[T.CHIN] - pts[T.FOREHEAD]))
            bottom = pts[T.CHIN, 1] + JAW_FADE * height - 2.0 * self.avatar.step
            face.pinned = tp.raise_ring(pts, bottom)
        pinned = replace(face, vertices=face.pinned)
        out = self._deform_mouth(image, pinned, replace(pose, blink=0.0))
        if pose.blink > 0:
            if face.lids is None:
                face.lids = LidLayer(image, face.vertices[: tp.N_FACE])
            face.lids.draw(out, pose.blink)
        return out

    def _deform_mouth(self, image: np.ndarray, face: SourceFace, pose: Pose) -> np.ndarray:
        offsets = np.zeros_like(face.vertices)
        offsets[: tp.N_FACE] = face.rig.displacements(pose, self.options.expressiveness)
        offsets[tp.OPENING_START :] = offsets[list(tp.EYE_OPENING)]
        moving = fld.moving_triangles(self.triangles, offsets)
        out = image.copy()
        if not len(moving):
            return out
        target = face.vertices + offsets
        region = fld.Region.around(target[np.unique(moving)], image.shape)
        if region.empty:
            return out
        source_xy = fld.backward_map(face.vertices, target, moving, region, self.avatar.step)
        out[region.y0 : region.y1, region.x0 : region.x1] = fld.remap_region(image, source_xy)
        geometry = MouthGeometry.from_points(target, face.rig.frame.scale)
        gap = geometry.gap()
        if gap > _MIN_GAP_CM:
            softness = EDGE_SOFTNESS_PX * self.avatar.step
            render_interior(out, geometry, self._texture(gap), pose.teeth, softness)
        return out

    def _texture(self, gap: float) -> MouthTexture:
        """Interior for an opening of ``gap`` cm: the smallest source opening that covers it.

        Keeps the current choice while it still fits (covers the gap and is not
        more than twice as open), so the teeth do not flicker between sources.
        """
        textures = self.avatar.textures
        current = textures[self.texture_index]
        if len(textures) == 1 or (gap <= current.gap <= 2.0 * gap + 0.2):
            return current
        fits = [i for i, t in enumerate(textures) if t.gap >= gap]
        self.texture_index = fits[0] if fits else len(textures) - 1
        return textures[self.texture_index]


def _video_frames(avatar: WarpAvatar, loop: LoopMode) -> Iterator[tuple[np.ndarray, int]]:
    """Endless ``(frame, source index)``: forwards, then backwards or from the start again.

    Backward passes decode blocks of ``_BLOCK`` frames and reverse them, so memory
    stays bounded whatever the clip length.
    """
    from avatarlab.media import iter_frames

    assert avatar.video is not None
    n = avatar.n_source_frames
    times = avatar.timestamps
    eps = 0.5 / max(avatar.fps, 1.0)
    while True:
        count = 0
        for j, (frame, _) in enumerate(iter_frames(avatar.video)):
            if j >= n:
                break
            count += 1
            yield frame, j
        if count == 0:
            raise MediaError(f"{avatar.video} has no frames to dub")
        if loop == "loop" or n < 3:
            continue
        for end in range(n - 1, 0, -_BLOCK):  # frames n-2 .. 1, newest first
            start = max(end - _BLOCK, 1)
            block = _decode_block(avatar.video, times, start, end, eps)
            for k in range(len(block) - 1, -1, -1):
                yield block[k], start + k


_BLOCK = 48


def _decode_block(
    video: Path, times: np.ndarray, start: int, end: int, eps: float
) -> list[np.ndarray]:
    """Frames ``start .. end-1`` of ``video`` (by their tracked timestamps)."""
    from avatarlab.media import iter_frames

    out: list[np.ndarray] = []
    for frame, _ in iter_frames(video, start=float(times[start]), end=float(times[end - 1]) + eps):
        out.append(frame)
    if len(out) != end - start:
        raise MediaError(
            f"{video}: could not re-read frames {start}-{end - 1} for ping-pong looping; "
            "use loop='loop' or re-encode the video"
        )
    return out
