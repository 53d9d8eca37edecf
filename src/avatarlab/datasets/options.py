"""Options of the preparation pipeline: presets and :class:`PrepareOptions`.

Kept free of heavy imports so the command line can build its flags from the
defaults here without loading numpy, OpenCV or pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from avatarlab.errors import OptionError


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise ``OptionError`` unless both split fractions are >= 0 and sum to at most 1."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction > 1:
        raise OptionError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 "
            "and sum to at most 1"
        )


#: Largest crop side, pixels: 4x the biggest crops the field trains on (512), and a
#: frame buffer of a few MB (``size=100000`` would allocate 30 GB per frame).
MAX_SIZE = 2048
#: Largest output frame rate: above any camera the corpora use (at most 60 fps).
MAX_FPS = 120.0
#: Largest output audio rate, Hz.
MAX_SAMPLE_RATE = 192_000


@dataclass(frozen=True)
class Preset:
    """How a preset stores crops.

    ``container``: ``"frames"`` (numbered JPEGs + audio.wav) or ``"mp4"`` (video with
    audio); ``crop``: ``"box"`` (a square around the face in every frame, smoothed)
    or ``"fixed"`` (one square per segment covering all its face positions, so the
    head moves inside the crop, as HDTF's recipe does); ``scale``: crop side as a
    multiple of the face box's longer side.
    """

    container: str
    crop: str
    scale: float


PRESETS: dict[str, Preset] = {
    # Wav2Lip trains on tight face boxes (its preprocess pads the chin by 10 px).
    "wav2lip": Preset("frames", "box", 1.2),
    # syncnet_python crops the face box enlarged by its crop_scale 0.4.
    "syncnet": Preset("mp4", "box", 1.4),
    # HDTF crops a fixed window per clip around the moving head.
    "hdtf": Preset("mp4", "fixed", 1.6),
}


@dataclass(frozen=True)
class PrepareOptions:
    """Everything that decides the prepared output (executors never change it).

    Attributes:
        preset: output layout, one of :data:`PRESETS` (``wav2lip``, ``hdtf``, ``syncnet``).
        size: side of the square face crops in pixels (16..2048).
        scale: crop side / face box side; ``None`` takes the preset's value.
        fps: output frame rate (at most 120).
        sample_rate: output audio rate (mono, at most 192000 Hz).
        min_face: smallest usable face box height, in source pixels.
        max_yaw: largest usable absolute yaw, degrees.
        max_pitch: largest usable absolute pitch, degrees.
        min_sharpness: smallest usable median CPBD sharpness of a segment (0..1).
        min_duration: shortest segment kept, seconds.
        shot_threshold: mean absolute grey difference (0-255) of 32x32 thumbnails of
            consecutive frames that counts as a shot cut (the face tracker's rule).
        smooth: frames in the moving average that steadies crop boxes (1 = off).
        sharpness_every: measure CPBD on every n-th frame with a face.
        jpeg_quality: JPEG quality of the ``wav2lip`` frames (1..100).
        val_fraction: share of speakers in the validation split.
        test_fraction: share of speakers in the test split.
        retry_failed: redo clips that failed in an earlier run (finished ones are kept).
    """

    preset: str = "wav2lip"
    size: int = 256
    scale: float | None = None
    fps: float = 25.0
    sample_rate: int = 16000
    min_face: int = 64
    max_yaw: float = 45.0
    max_pitch: float = 30.0
    min_sharpness: float = 0.05
    min_duration: float = 1.0
    shot_threshold: float = 30.0
    smooth: int = 5
    sharpness_every: int = 5
    jpeg_quality: int = 95
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise OptionError(f"preset={self.preset!r}: choose one of {', '.join(PRESETS)}")
        checks = [
            (
                16 <= self.size <= MAX_SIZE,
                f"size must be in 16..{MAX_SIZE} pixels, got {self.size}",
            ),
            (self.scale is None or self.scale > 0, "scale must be > 0"),
            (0 < self.fps <= MAX_FPS, f"fps must be in (0, {MAX_FPS:g}], got {self.fps:g}"),
            (
                0 < self.sample_rate <= MAX_SAMPLE_RATE,
                f"sample_rate must be in 1..{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}",
            ),
            (self.min_face >= 0, "min_face must be >= 0"),
            (
                0 < self.max_yaw <= 180 and 0 < self.max_pitch <= 180,
                "max_yaw/max_pitch must be in (0, 180]",
            ),
            (0 <= self.min_sharpness <= 1, "min_sharpness must be in [0, 1]"),
            (self.min_duration >= 0, "min_duration must be >= 0"),
            (0 < self.shot_threshold <= 255, "shot_threshold must be in (0, 255]"),
            (
                self.smooth >= 1 and self.sharpness_every >= 1,
                "smooth and sharpness_every must be >= 1",
            ),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in 1..100"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)
        check_fractions(self.val_fraction, self.test_fraction)

    def output_options(self) -> dict[str, object]:
        """The options that decide the files a clip folder holds (JSON-ready).

        Leaves out the split fractions (only the manifest and file lists depend on
        them, and both are rebuilt on every run) and ``retry_failed``.
        """
        skip = {"val_fraction", "test_fraction", "retry_failed"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    @property
    def layout(self) -> Preset:
        """The preset, with ``scale`` overridden when given."""
        preset = PRESETS[self.preset]
        if self.scale is None:
            return preset
        return Preset(preset.container, preset.crop, self.scale)
