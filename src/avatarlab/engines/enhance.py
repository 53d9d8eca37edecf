"""Face enhancement: restore only the aligned face with GFPGAN or CodeFormer and paste it back.

The enhancers sit behind one small interface, :class:`Restorer` (aligned 512 x 512 RGB
faces in, restored faces out), registered by name in :data:`ENHANCERS` (``gfpgan``,
``codeformer``). :class:`FaceEnhancer` is the pipeline around them, the one GFPGAN's
``GFPGANer`` and facexlib's ``FaceRestoreHelper`` run (TencentARC/GFPGAN ``gfpgan/utils.py``,
xinntao/facexlib ``facexlib/utils/face_restoration_helper.py``) on our own landmarks instead
of RetinaFace:

1. five points per face from our mesh (478 points) or the iBUG 68 points: the two eye
   centres (iris centres when the mesh has them), the nose tip, the two mouth corners;
2. the least-squares similarity (rotation, uniform scale, translation) that maps them onto
   the FFHQ 512 template the published models were trained on (:data:`FFHQ_TEMPLATE_512`;
   the reference estimates it with OpenCV's robust LMedS, we use the exact least-squares
   fit, which is smooth in the landmarks and so does not jitter on video);
3. a bilinear warp to the 512 crop (outside the frame: the reference's grey 132, 133, 135);
4. the network on a batch of crops;
5. an inverse warp and a feathered paste inside the face's convex hull: the mask is the hull
   eroded by the blur's reach and then blurred, so every pixel outside the hull keeps its
   input value bit for bit (the reference pastes the whole square, or a face-parsing mask).

``upscale=2`` resizes the frame with Lanczos (OpenCV ``INTER_LANCZOS4``) and pastes the
restored face at twice the size: we ship no Real-ESRGAN, so the background is only resized.

Video: the tracker's One-Euro-smoothed landmarks give the alignment, so the crop does not
jitter; GFPGAN runs with its stored noise maps (a still face gives the same output every
frame, where the reference's fresh noise per call would shimmer); ``temporal`` optionally
blends each restored crop with the previous one, warped into the current crop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from avatarlab._torch import resolve_device
from avatarlab.errors import OptionError
from avatarlab.face import paste_back
from avatarlab.face import topology as T
from avatarlab.registry import Registry

if TYPE_CHECKING:
    import torch

FACE_SIZE = 512
"""Side of the aligned face crop the published restoration models take, in pixels."""

FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
"""Where the five points sit in a 512 FFHQ-aligned face (facexlib's template): the eye on
the image's left (the subject's right), the other eye, the nose tip, the mouth corner on the
image's left, the other corner."""

BORDER_RGB = (132, 133, 135)
"""Fill of crop pixels outside the frame (the reference's BGR (135, 133, 132))."""


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """``(5, 2)`` float64 points in :data:`FFHQ_TEMPLATE_512` order from 478/468/68 landmarks.

    Eye centres are the iris centres of the 478-point mesh when present (else the mean of
    the eye contour), the nose tip is mesh point 1 / iBUG 30, the mouth corners mesh 61 and
    291 / iBUG 48 and 54.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    n = pts.shape[0]
    if n == 68:
        right, left = pts[36:42].mean(0), pts[42:48].mean(0)
        return np.stack([right, left, pts[30], pts[48], pts[54]])
    if n not in (T.NUM_FACE_POINTS, T.NUM_MESH_POINTS):
        raise OptionError(f"landmarks must have 478, 468 or 68 points, got {n}")
    right, left = pts[list(T.RIGHT_EYE)].mean(0), pts[list(T.LEFT_EYE)].mean(0)
    if n == T.NUM_MESH_POINTS and np.isfinite(pts[[T.RIGHT_IRIS_CENTER, T.LEFT_IRIS_CENTER]]).all():
        right, left = pts[T.RIGHT_IRIS_CENTER], pts[T.LEFT_IRIS_CENTER]
    corner_r, corner_l = T.MOUTH_CORNERS
    return np.stack([right, left, pts[T.NOSE_TIP], pts[corner_r], pts[corner_l]])


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity mapping points ``src`` ``(N, 2)`` onto ``dst`` ``(N, 2)``.

    Umeyama's closed form without reflection: rotation and uniform scale from the SVD of the
    centred cross-covariance, translation from the centroids.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise OptionError("landmarks are NaN: cannot align this face")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = float((s**2).sum()) / len(src)
    if var < 1e-9:
        raise OptionError("landmarks are degenerate (all points coincide): cannot align")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign)) / var
    a = scale * rot
    return np.hstack([a, (mu_d - a @ mu_s)[:, None]])


def ffhq_alignment(landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """2x3 frame -> crop matrix putting the face on the FFHQ template of a ``size`` crop."""
    return similarity_matrix(five_points(landmarks), FFHQ_TEMPLATE_512 * (size / 512.0))


def crop_face(frame: np.ndarray, matrix: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 crop of ``frame`` under ``matrix`` (bilinear, grey border)."""
    return cv2.warpAffine(
        frame,
        np.asarray(matrix, dtype=np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BORDER_RGB,
    )


def _blur_reach(sigma: float) -> int:
    """Half width of the kernel ``cv2.GaussianBlur`` builds for ``sigma`` (float images)."""
    ksize = int(round(sigma * 8 + 1)) | 1
    return ksize // 2


def hull_mask(landmarks: np.ndarray, matrix: np.ndarray, size: int, feather: float) -> np.ndarray:
    """``(size, size)`` float32 0/1 mask in crop pixels: the landmarks' convex hull, eroded so
    that blurring it by ``feather`` (``paste_back``'s sigma = feather x size / 3) stays inside
    the hull."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    pts = pts[np.isfinite(pts).all(1)]
    crop_pts = pts @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]
    hull = cv2.convexHull(np.round(crop_pts * 16).astype(np.int32))
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, (1,), lineType=cv2.LINE_8, shift=4)
    reach = _blur_reach(feather * size / 3.0) + 2 if feather > 0 else 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    return cv2.erode(mask, kernel).astype(np.float32)


def upscaled_matrix(matrix: np.ndarray, upscale: int) -> np.ndarray:
    """Frame -> crop matrix for the frame resized by ``upscale`` (pixel centres kept)."""
    m = np.asarray(matrix, dtype=np.float64)
    if upscale == 1:
        return m.copy()
    offset = 0.5 / upscale - 0.5  # output pixel u sits at (u + 0.5) / s - 0.5 in the input
    out = m.copy()
    out[:, :2] = m[:, :2] / upscale
    out[:, 2] = m[:, 2] + m[:, :2] @ np.array([offset, offset])
    return out


def upscale_frame(frame: np.ndarray, upscale: int) -> np.ndarray:
    """The frame resized by ``upscale`` with Lanczos (itself when ``upscale`` is 1)."""
    if upscale == 1:
        return frame
    h, w = frame.shape[:2]
    return cv2.resize(frame, (w * upscale, h * upscale), interpolation=cv2.INTER_LANCZOS4)


# --- the enhancer interface -------------------------------------------------------------


class Restorer(Protocol):
    """A face restoration network behind the pipeline.

    ``restore`` takes aligned faces ``(B, 512, 512, 3)`` RGB uint8 (FFHQ template) and
    returns restored faces of the same shape and dtype.
    """

    name: str

    def restore(self, faces: np.ndarray) -> np.ndarray: ...


class NetworkRestorer:
    """Runs a restoration network on batches of faces: uint8 -> ``[-1, 1]`` -> network ->
    clamp -> uint8 (rounded), as the references' ``img2tensor`` / ``tensor2img`` do."""

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        run: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        batch_size: int = 4,
    ) -> None:
        if batch_size < 1:
            raise OptionError(f"batch_size must be at least 1, got {batch_size}")
        self.name = name
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self._run = run

    def restore(self, faces: np.ndarray) -> np.ndarray:
        import torch

        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 3):
            raise OptionError(f"faces must be (B, 512, 512, 3) uint8, got {faces.shape}")
        out = np.empty_like(faces)
        for i in range(0, len(faces), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(faces[i : i + self.batch_size]))
            x = chunk.to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            with torch.inference_mode():
                y = self._run(x).clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_()
            out[i : i + len(chunk)] = y.byte().permute(0, 2, 3, 1).cpu().numpy()
        return out


def gfpgan_restorer(
    checkpoint: str | None = None,
    *,
    version: str = "1.4",
    device: str = "auto",
    batch_size: int = 4,
    randomize_noise: bool = False,
    model: torch.nn.Module | None = None,
) -> NetworkRestorer:
    """GFPGAN v1.3/v1.4 from ``checkpoint`` (else the cached official file), or ``model``.

    ``randomize_noise``: fresh StyleGAN2 noise per call (the reference's default) instead of
    the checkpoint's stored noise maps (deterministic, steadier on video).
    """
    from avatarlab.engines.gfpgan import load_gfpgan

    dev = resolve_device(device)
    net = model if model is not None else load_gfpgan(checkpoint, dev, version=version)
    return NetworkRestorer(
        "gfpgan",
        net,
        lambda x: net(x, randomize_noise=randomize_noise),
        dev,
        batch_size,
    )


def codeformer_restorer(
    checkpoint: str | None = None,
    *,
    fidelity: float = 0.5,
    device: str = "auto",
    batch_size: int = 4,
    model: torch.nn.Module | None = None,
) -> NetworkRestorer:
    """CodeFormer from ``checkpoint`` (else the cached ``codeformer.pth``), or ``model``.

    ``fidelity``: the weight ``w`` in [0, 1]; 0 trusts the codebook, 1 the input.
    """
    from avatarlab.engines.codeformer import load_codeformer

    if not 0.0 <= fidelity <= 1.0:
        raise OptionError(f"fidelity must be in [0, 1], got {fidelity}")
    dev = resolve_device(device)
    net = model if model is not None else load_codeformer(checkpoint, dev)
    return NetworkRestorer(
        "codeformer", net, lambda x: net(x, fidelity, adain=True), dev, batch_size
    )


ENHANCERS: Registry[Callable[..., Restorer]] = Registry(
    "enhancer", entry_points="avatarlab.enhancers"
)
"""Restorer factories by name; each takes ``checkpoint`` and keyword options."""
ENHANCERS.register("gfpgan", gfpgan_restorer)
ENHANCERS.register("codeformer", codeformer_restorer)


# --- the pipeline --------------------------------------------------------------------


@dataclass
class _Previous:
    """The last restored crop of the tracked face and its frame -> crop matrix."""

    crop: np.ndarray
    matrix: np.ndarray


@dataclass
class FaceEnhancer:
    """Restore every given face of each frame and paste it back (see the module docstring).

    Attributes:
        restorer: the network (:class:`Restorer`).
        upscale: output size factor, 1 or 2 (the background is Lanczos-resized).
        feather: soft edge of the paste mask, as a fraction of the 512 crop (blur sigma
            feather x 512 / 3), kept inside the face's convex hull.
        temporal: weight in [0, 1) of the previous restored crop blended into the current
            one (video, first face only; 0 = off).
    """

    restorer: Restorer
    upscale: int = 1
    feather: float = 0.04
    temporal: float = 0.0
    _previous: _Previous | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.upscale not in (1, 2):
            raise OptionError(f"upscale must be 1 or 2, got {self.upscale}")
        if not 0.0 <= self.feather <= 0.2:
            raise OptionError(f"feather must be in [0, 0.2], got {self.feather}")
        if not 0.0 <= self.temporal < 1.0:
            raise OptionError(f"temporal must be in [0, 1), got {self.temporal}")

    def reset(self) -> None:
        """Forget the previous crop (call at a scene cut or when the face was lost)."""
        self._previous = None

    def enhance(
        self, frames: Sequence[np.ndarray], faces: Sequence[Sequence[np.ndarray]]
    ) -> list[np.ndarray]:
        """Enhanced frames, ``upscale`` x the size of ``frames`` (RGB uint8 ``(H, W, 3)``).

        ``faces[i]``: landmark arrays (478/468/68 points, frame pixels) of the faces to
        restore in frame ``i``; a frame without faces is only resized. All crops of the call
        go through the network together (in ``restorer``'s batch size).
        """
        if len(frames) != len(faces):
            raise OptionError(f"{len(frames)} frames but {len(faces)} face lists")
        jobs = [(i, lm, ffhq_alignment(lm)) for i, lms in enumerate(faces) for lm in lms]
        crops = [crop_face(frames[i], m) for i, _, m in jobs]
        restored = (
            self.restorer.restore(np.stack(crops)) if crops else np.zeros((0, 1, 1, 3), np.uint8)
        )
        out = [upscale_frame(np.asarray(f), self.upscale) for f in frames]
        for (i, lm, matrix), face in zip(jobs, restored, strict=True):
            if self.temporal > 0 and lm is faces[i][0]:
                face = self._blend(face, matrix)
            mask = hull_mask(lm, matrix, FACE_SIZE, self.feather)
            up = upscaled_matrix(matrix, self.upscale)
            out[i] = paste_back(out[i], face, up, mask=mask, feather=self.feather)
        return out

    def _blend(self, face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Blend the previous restored crop, warped into this crop's frame, by ``temporal``."""
        prev, self._previous = self._previous, _Previous(face, matrix)
        if prev is None:
            return face
        # current crop pixel -> frame (inverse of matrix) -> previous crop (prev.matrix)
        to_prev = _compose(prev.matrix, cv2.invertAffineTransform(matrix))
        warped = cv2.warpAffine(
            prev.crop,
            to_prev,
            (FACE_SIZE, FACE_SIZE),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        a = np.float32(self.temporal)
        mixed = face.astype(np.float32) * (1 - a) + warped.astype(np.float32) * a
        blended = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        self._previous = _Previous(blended, matrix)
        return blended


def enhance_tracked(
    frames: Iterable[tuple[np.ndarray, float]],
    enhancer: FaceEnhancer,
    batch: int,
    missing: list[int] | None = None,
) -> Iterator[np.ndarray]:
    """Restore the face of a video: one enhanced frame per ``(frame, t)`` (t in seconds).

    The face tracker follows one face (its One-Euro-smoothed 478 points align the crop, so
    the crop does not jitter); ``batch`` frames go through the network together. A frame
    without a face is only resized and its index appended to ``missing``; losing or
    re-detecting the face resets ``enhancer``'s temporal blending.
    """
    from avatarlab.face import FaceTracker

    enhancer.reset()
    index = 0
    with FaceTracker() as tracker:
        for chunk in _chunks(frames, batch):
            landmarks: list[list[np.ndarray]] = []
            for frame, t in chunk:
                state = tracker.update(frame, t)
                if state is None or state.detected:
                    enhancer.reset()  # lost or re-acquired: the previous crop is stale
                if state is None and missing is not None:
                    missing.append(index)
                index += 1
                landmarks.append([] if state is None else [state.landmarks])
            yield from enhancer.enhance([f for f, _ in chunk], landmarks)


def _chunks(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 matrix of ``outer(inner(p))``."""
    o = np.vstack([np.asarray(outer, dtype=np.float64), [0.0, 0.0, 1.0]])
    i = np.vstack([np.asarray(inner, dtype=np.float64), [0.0, 0.0, 1.0]])
    return (o @ i)[:2]


def frame_difference(frames: Sequence[np.ndarray], region: np.ndarray) -> float:
    """Mean absolute difference (0-255) between consecutive frames inside ``region`` (bool
    ``(H, W)``): the flicker measure of the docs (lower is steadier)."""
    if len(frames) < 2:
        return 0.0
    diffs = [
        float(np.abs(b.astype(np.int16) - a.astype(np.int16))[region].mean())
        for a, b in zip(frames[:-1], frames[1:], strict=True)
    ]
    return float(np.mean(diffs))


def face_region(landmarks: np.ndarray, shape: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Bool ``(H, W)`` mask of the landmarks' convex hull (times ``scale``) in an image of ``shape``."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    pts = (pts[np.isfinite(pts).all(1)] + 0.5) * scale - 0.5
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts * 16).astype(np.int32)), (1,), shift=4)
    return mask.astype(bool)
