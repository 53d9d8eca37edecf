"""``avatarlab enhance``: restore faces in images and videos with GFPGAN or CodeFormer.

Faces come from our own pipeline (MediaPipe detection and mesh for images, the face tracker
for videos); the network runs only on the FFHQ-aligned 512 crop and the result is pasted
back inside the face's convex hull, so everything outside it is unchanged
(:mod:`avatarlab.engines.enhance`). Weights are never downloaded here: a missing checkpoint
is one line naming the file and where it is published (``models fetch`` gets it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from avatarlab.errors import NoFaceError, OptionError

if TYPE_CHECKING:
    from avatarlab.engines.enhance import FaceEnhancer, Restorer
    from avatarlab.media import MediaInfo

EnhanceModel = Literal["gfpgan", "codeformer"]
GfpganVersion = Literal["1.3", "1.4"]


@dataclass(frozen=True)
class EnhanceOptions:
    """Which restoration network runs where, and how its faces are pasted back.

    Attributes:
        model: restoration network: gfpgan (GFPGAN v1.3/v1.4, Apache-2.0) or codeformer
            (S-Lab License 1.0, non-commercial use only).
        fidelity: CodeFormer's weight w in [0, 1]: 0 favours quality, 1 faithfulness.
        upscale: output size factor; 2 resizes the background with Lanczos (no Real-ESRGAN).
        version: GFPGAN checkpoint version (1.3 or 1.4).
        checkpoint: checkpoint file; default: the official file in the weights cache.
        device: torch device: auto (CUDA when present), cpu, cuda or cuda:N.
        batch_size: face crops per network call.
        feather: soft paste edge as a fraction of the 512 crop, kept inside the face.
        temporal: video: weight in [0, 1) of the previous restored face blended in (0 = off).
        randomize_noise: GFPGAN: fresh StyleGAN2 noise per frame instead of the stored maps.
    """

    model: EnhanceModel = "gfpgan"
    fidelity: float = 0.5
    upscale: Literal[1, 2] = 1
    version: GfpganVersion = "1.4"
    checkpoint: str | None = None
    device: str = "auto"
    batch_size: int = 4
    feather: float = 0.04
    temporal: float = 0.0
    randomize_noise: bool = False

    def __post_init__(self) -> None:
        if self.model not in ("gfpgan", "codeformer"):
            raise OptionError(f"model must be gfpgan or codeformer, got {self.model!r}")
        if not 0.0 <= self.fidelity <= 1.0:
            raise OptionError(f"fidelity must be in [0, 1], got {self.fidelity}")
        if self.upscale not in (1, 2):
            raise OptionError(f"upscale must be 1 or 2, got {self.upscale}")
        if self.version not in ("1.3", "1.4"):
            raise OptionError(f"version must be 1.3 or 1.4, got {self.version!r}")
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.feather <= 0.2:
            raise OptionError(f"feather must be in [0, 0.2], got {self.feather}")
        if not 0.0 <= self.temporal < 1.0:
            raise OptionError(f"temporal must be in [0, 1), got {self.temporal}")


@dataclass
class EnhanceResult:
    """What ``enhance`` wrote: one output per input, with per-file face counts."""

    outputs: list[Path] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)
    """Faces restored per input (summed over frames for videos)."""
    frames_without_face: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "outputs": [str(p) for p in self.outputs],
            "frames": self.frames,
            "faces": self.faces,
            "frames_without_face": self.frames_without_face,
            "seconds": round(self.seconds, 3),
        }


def make_restorer(options: EnhanceOptions) -> Restorer:
    """The network of ``options`` with its checkpoint loaded (MissingWeightsError if absent)."""
    from avatarlab.engines.enhance import ENHANCERS

    factory = ENHANCERS.get(options.model)
    if options.model == "gfpgan":
        return factory(
            options.checkpoint,
            version=options.version,
            device=options.device,
            batch_size=options.batch_size,
            randomize_noise=options.randomize_noise,
        )
    return factory(
        options.checkpoint,
        fidelity=options.fidelity,
        device=options.device,
        batch_size=options.batch_size,
    )


def enhance(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: EnhanceOptions | None = None,
    *,
    restorer: Restorer | None = None,
) -> EnhanceResult:
    """Restore the faces of images and videos; outputs have the input's size x ``upscale``.

    ``out`` is the output file for a single input (same kind: image or video), else a folder
    that receives one file per input under the input's name. ``restorer`` replaces the
    network that ``options`` names (for tests and callers holding a model already).
    Videos keep their frame rate and audio; frames without a face are only resized.
    """
    from avatarlab.engines.enhance import FaceEnhancer
    from avatarlab.media import probe
    from avatarlab.media.files import find_media

    options = options or EnhanceOptions()
    paths = find_media([inputs] if isinstance(inputs, str | os.PathLike) else list(inputs))
    if not paths:
        raise OptionError("no input images or videos given")
    infos = [probe(p) for p in paths]
    targets = _targets(infos, Path(out))
    enhancer = FaceEnhancer(
        restorer or make_restorer(options),
        upscale=options.upscale,
        feather=options.feather,
        temporal=options.temporal,
    )
    t0 = time.perf_counter()
    result = EnhanceResult()
    for info, target in zip(infos, targets, strict=True):
        enhancer.reset()
        missing: list[int] = []
        if info.is_image:
            faces = _enhance_image(info, target, enhancer)
            frames = 1
        else:
            frames, faces, missing = _enhance_video(info, target, enhancer, options.batch_size)
        result.outputs.append(target)
        result.frames.append(frames)
        result.faces.append(faces)
        result.frames_without_face.append(missing)
    result.seconds = time.perf_counter() - t0
    return result


def _targets(infos: list[MediaInfo], out: Path) -> list[Path]:
    """Output path per input; checked before any work."""
    from avatarlab._util import make_output_folder
    from avatarlab.media.files import check_image_output
    from avatarlab.media.writer import check_video_output

    for info in infos:
        if not info.has_video:
            raise OptionError(f"{info.path} has no picture: enhance takes images and videos")
    if len(infos) == 1 and out.suffix and not out.is_dir():
        targets = [out]
    else:
        folder = make_output_folder(out)
        targets = [folder / (i.path.name if i.is_image else i.path.stem + ".mp4") for i in infos]
        if len(set(targets)) != len(targets):
            raise OptionError("two inputs have the same file name: enhance them separately")
    for info, target in zip(infos, targets, strict=True):
        if info.is_image:
            check_image_output(target)
        else:
            check_video_output(target)
    return targets


def _enhance_image(info: MediaInfo, target: Path, enhancer: FaceEnhancer) -> int:
    from avatarlab.face import analyze_image
    from avatarlab.media import read_image
    from avatarlab.media.files import write_image

    frame = read_image(info.path)
    meshes = [f.mesh for f in analyze_image(frame) if f.mesh is not None]
    if not meshes:
        raise NoFaceError(
            f"no face found in {info.path}: enhance needs a visible face of at least ~40 px"
        )
    (image,) = enhancer.enhance([frame], [meshes])
    write_image(target, image)
    return len(meshes)


def _enhance_video(
    info: MediaInfo, target: Path, enhancer: FaceEnhancer, batch: int
) -> tuple[int, int, list[int]]:
    """Track the face frame by frame, restore in batches, encode; returns counts."""
    from avatarlab.engines.enhance import enhance_tracked
    from avatarlab.media import VideoWriter, iter_frames, read_audio_with_rate

    audio, rate = read_audio_with_rate(info.path, mono=False) if info.has_audio else (None, None)
    missing: list[int] = []
    with VideoWriter(target, info.fps or 25.0, audio=audio, sample_rate=rate) as writer:
        for image in enhance_tracked(iter_frames(info.path), enhancer, batch, missing):
            writer.write(image)
    frames = writer.frames_written
    return frames, frames - len(missing), missing
