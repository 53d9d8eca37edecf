"""The face-enhancement pipeline: FFHQ alignment, paste-back, `enhance` end to end."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.engines.enhance import (
    FFHQ_TEMPLATE_512,
    FaceEnhancer,
    crop_face,
    face_region,
    ffhq_alignment,
    five_points,
    frame_difference,
    similarity_matrix,
    upscale_frame,
)
from avatarlab.errors import MissingWeightsError, OptionError
from avatarlab.tasks.enhance import EnhanceOptions, enhance


class Invert:
    """A stand-in restorer that changes every pixel of the crop (255 - x)."""

    name = "invert"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def restore(self, faces: np.ndarray) -> np.ndarray:
        self.calls.append(len(faces))
        return 255 - faces


class Noisy:
    """A restorer whose output shimmers from call to call (like fresh StyleGAN2 noise)."""

    name = "noisy"

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def restore(self, faces: np.ndarray) -> np.ndarray:
        noise = self.rng.integers(-40, 41, faces.shape)
        return np.clip(faces.astype(np.int16) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def portrait(data_dir):
    from avatarlab.face import analyze_image
    from avatarlab.media import read_image

    image = read_image(data_dir / "image" / "cartoon_boy.png")
    faces = [f.mesh for f in analyze_image(image) if f.mesh is not None]
    assert faces, "the shared portrait should have a face"
    return image, faces


@pytest.fixture(scope="module")
def clip(data_dir, tmp_path_factory):
    """The first 3 frames of talk_c.mp4 (with its audio) and their frames."""
    from avatarlab.media import SPEECH_RATE, read_audio, read_video, write_video

    src = data_dir / "video" / "talk_c.mp4"
    video = read_video(src, end=3 / 25)
    path = tmp_path_factory.mktemp("clip") / "talk_c_3.mp4"
    wav = read_audio(src, SPEECH_RATE)[: int(3 / 25 * SPEECH_RATE)]
    write_video(path, video.frames, video.fps, audio=wav, sample_rate=SPEECH_RATE)
    return path


def test_five_points_order_from_68_points():
    pts = np.zeros((68, 2))
    pts[36:42] = [100, 200]  # subject's right eye: image left
    pts[42:48] = [300, 200]
    pts[30] = [200, 300]
    pts[48], pts[54] = [130, 400], [270, 400]
    np.testing.assert_array_equal(
        five_points(pts), [[100, 200], [300, 200], [200, 300], [130, 400], [270, 400]]
    )


def test_similarity_recovers_a_known_transform():
    src = np.random.default_rng(1).uniform(0, 500, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -40.0])
    a = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = similarity_matrix(src, src @ a.T + shift)
    np.testing.assert_allclose(m, np.hstack([a, shift[:, None]]), atol=1e-9)


def test_degenerate_landmarks_are_an_option_error():
    with pytest.raises(OptionError, match="degenerate"):
        similarity_matrix(np.ones((5, 2)), FFHQ_TEMPLATE_512)


def test_alignment_puts_our_landmarks_on_the_ffhq_template(portrait):
    image, faces = portrait
    m = ffhq_alignment(faces[0])
    mapped = five_points(faces[0]) @ m[:, :2].T + m[:, 2]
    residual = np.linalg.norm(mapped - FFHQ_TEMPLATE_512, axis=1)
    assert residual.max() < 25.0  # px in the 512 crop: face shape differs from the mean face
    assert mapped[0, 0] < mapped[1, 0] and mapped[3, 0] < mapped[4, 0]  # no mirroring
    assert crop_face(image, m).shape == (512, 512, 3)


@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_changes_only_the_face(portrait, upscale):
    image, faces = portrait
    restorer = Invert()
    (out,) = FaceEnhancer(restorer, upscale=upscale).enhance([image], [faces])
    h, w = image.shape[:2]
    assert out.shape == (h * upscale, w * upscale, 3)
    background = upscale_frame(image, upscale)
    inside = np.zeros(out.shape[:2], dtype=bool)
    for lm in faces:
        inside |= face_region(lm, out.shape[:2], upscale)
    inside = _dilate(inside, 2 * upscale)  # bilinear reach of the warped mask
    assert np.array_equal(out[~inside], background[~inside])  # bit for bit
    core = face_region(faces[0], out.shape[:2], upscale) & ~_dilate(
        ~face_region(faces[0], out.shape[:2], upscale), 60 * upscale
    )
    changed = np.abs(out.astype(int) - background.astype(int)).max(axis=2) > 0
    assert changed[core].mean() > 0.9  # the face interior is the restorer's output
    assert restorer.calls == [len(faces)]


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def test_tracked_video_frames_change_only_inside_the_face(clip):
    from avatarlab.face import FaceTracker
    from avatarlab.media import read_video

    frames = read_video(clip).frames
    with FaceTracker() as tracker:
        lms = [tracker.update(f).landmarks for f in frames]
    out = FaceEnhancer(Invert()).enhance(list(frames), [[lm] for lm in lms])
    for frame, lm, result in zip(frames, lms, out, strict=True):
        outside = ~_dilate(face_region(lm, frame.shape[:2]), 2)
        assert np.array_equal(result[outside], frame[outside])
        assert not np.array_equal(result, frame)


def test_temporal_blending_reduces_flicker(clip):
    from avatarlab.face import FaceTracker
    from avatarlab.media import read_video

    frames = list(read_video(clip).frames)
    with FaceTracker() as tracker:
        lms = [tracker.update(f).landmarks for f in frames]
    region = face_region(lms[0], frames[0].shape[:2])
    plain = FaceEnhancer(Noisy()).enhance(frames, [[lm] for lm in lms])
    blended = FaceEnhancer(Noisy(), temporal=0.6).enhance(frames, [[lm] for lm in lms])
    assert frame_difference(blended, region) < 0.8 * frame_difference(plain, region)


def test_enhance_video_keeps_size_frames_and_audio(clip, tmp_path):
    from avatarlab.media import probe

    out = tmp_path / "out.mp4"
    res = enhance(clip, out, EnhanceOptions(upscale=2, batch_size=2), restorer=Invert())
    info, src = probe(out), probe(clip)
    assert (info.width, info.height) == (2 * src.width, 2 * src.height)
    assert info.n_frames == src.n_frames == res.frames[0] == 3
    assert res.faces == [3] and res.frames_without_face == [[]]
    assert info.has_audio


@pytest.mark.slow
def test_enhance_image_with_rule_b_gfpgan(portrait, data_dir, tmp_path):
    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.engines.enhance import gfpgan_restorer
    from avatarlab.engines.gfpgan.model import GFPGANv1Clean
    from avatarlab.media import read_image

    image, faces = portrait
    restorer = gfpgan_restorer(model=fill_state_dict(GFPGANv1Clean(), rule="B"), device="cpu")
    out = tmp_path / "boy.png"
    res = enhance(data_dir / "image" / "cartoon_boy.png", out, restorer=restorer)
    result = read_image(out)
    assert result.shape == image.shape and res.faces == [len(faces)]
    inside = np.zeros(image.shape[:2], dtype=bool)
    for lm in faces:
        inside |= face_region(lm, image.shape[:2])
    outside = ~_dilate(inside, 2)
    assert np.array_equal(result[outside], image[outside])
    assert np.abs(result[inside].astype(int) - image[inside].astype(int)).mean() > 5


@pytest.mark.parametrize(
    ("model", "filename"), [("gfpgan", "GFPGANv1.4.pth"), ("codeformer", "codeformer.pth")]
)
def test_missing_weights_is_one_line_and_writes_nothing(
    data_dir, tmp_path, monkeypatch, model, filename
):
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "cache"))
    out = tmp_path / "out.png"
    with pytest.raises(MissingWeightsError) as err:
        enhance(
            data_dir / "image" / "cartoon_boy.png", out, EnhanceOptions(model=model, device="cpu")
        )
    msg = str(err.value)
    assert "\n" not in msg and f"'{filename}'" in msg and "/releases/download/" in msg
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs", [{"fidelity": 1.5}, {"upscale": 3}, {"model": "esrgan"}, {"batch_size": 0}]
)
def test_bad_options_are_option_errors(kwargs):
    with pytest.raises(OptionError):
        EnhanceOptions(**kwargs)
