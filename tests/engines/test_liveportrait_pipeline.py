"""LivePortrait's pipeline logic and crop convention against reference runs, and the
official checkpoint layouts (strict loading, one-line errors).

``tests/fixtures/liveportrait/pipeline.npz`` comes from the public reference code run
outside the repository (README beside it): relative and absolute motion for every
animation region over a 4-frame driving sequence, stitching + lip normalisation + the
driving multiplier, pose bins and rotation matrices, the source and driving crop
matrices on 68 landmarks, and the eye/lip distance ratios.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avatarlab.engines._fill import fill_state_dict
from avatarlab.engines.liveportrait import crop as C
from avatarlab.engines.liveportrait import keypoints as kpt
from avatarlab.engines.liveportrait.checkpoints import (
    load_part,
    load_stitching,
    save_official_layout,
)
from avatarlab.engines.liveportrait.networks import build
from avatarlab.engines.liveportrait.options import LivePortraitOptions
from avatarlab.errors import CheckpointError, MissingWeightsError, OptionError

FIXTURE = Path(__file__).parent.parent / "fixtures" / "liveportrait" / "pipeline.npz"
KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
REGIONS = {"all": "all", "exp": "expression", "pose": "pose", "lip": "lips", "eyes": "eyes"}


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE))


@pytest.fixture(scope="module")
def mlps() -> dict[str, torch.nn.Module]:
    return {n: fill_state_dict(build(n), "B") for n in ("stitching", "lip", "eye")}


def _info(ref: dict[str, np.ndarray], prefix: str) -> kpt.KpInfo:
    return {k: torch.from_numpy(ref[f"{prefix}_{k}"]) for k in KEYS}


def _rot(info: kpt.KpInfo) -> torch.Tensor:
    return kpt.rotation_matrix(info["pitch"], info["yaw"], info["roll"])


def test_pose_bins_and_rotation_match_camera_py(ref):
    np.testing.assert_allclose(
        kpt.bins_to_degrees(torch.from_numpy(ref["bins_in"])).numpy(),
        ref["bins_degrees"],
        atol=1e-5,
    )
    a = torch.from_numpy(ref["angles_in"])
    rot = kpt.rotation_matrix(a[:, 0], a[:, 1], a[:, 2])
    np.testing.assert_allclose(rot.numpy(), ref["rotation"], atol=1e-6)
    # orthonormal: a rotation, not just a matrix
    eye = rot @ rot.transpose(1, 2)
    np.testing.assert_allclose(eye.numpy(), np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-5)


@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("region", list(REGIONS))
def test_motion_sequence_matches_pipeline(ref, mlps, relative, region):
    src = _info(ref, "source")
    drv = [_info(ref, f"driving{i}") for i in range(4)]
    x_s = kpt.transform_keypoint(src)
    np.testing.assert_allclose(x_s.numpy(), ref["x_s"], atol=1e-6)
    with torch.no_grad():
        lip_normal = kpt.retarget(mlps["lip"], x_s, torch.from_numpy(ref["lip_normalize_ratio"]))
        np.testing.assert_allclose(lip_normal.numpy(), ref["lip_delta_before_animation"], atol=1e-6)
        moved = [
            kpt.driven_keypoints(
                src, _rot(src), d, _rot(d), drv[0], _rot(drv[0]), REGIONS[region], relative
            )
            for d in drv
        ]
        final = [kpt.finish(x_s, x, mlps["stitching"], None, lip_normal, 0.7) for x in moved]
    tag = f"{'rel' if relative else 'abs'}_{region}"
    np.testing.assert_allclose(torch.cat(moved).numpy(), ref[f"motion_{tag}"], atol=1e-5)
    np.testing.assert_allclose(torch.cat(final).numpy(), ref[f"final_{tag}"], atol=1e-5)
    if relative:  # frame 0 of a relative drive reproduces the source keypoints
        np.testing.assert_allclose(moved[0].numpy(), x_s.numpy(), atol=1e-5)


def test_batched_motion_equals_frame_by_frame(ref):
    src = _info(ref, "source")
    drv = [_info(ref, f"driving{i}") for i in range(4)]
    batch = {k: torch.cat([d[k] for d in drv]) for k in KEYS}
    one = torch.cat(
        [kpt.driven_keypoints(src, _rot(src), d, _rot(d), drv[0], _rot(drv[0])) for d in drv]
    )
    many = kpt.driven_keypoints(src, _rot(src), batch, _rot(batch), drv[0], _rot(drv[0]))
    np.testing.assert_allclose(many.numpy(), one.numpy(), atol=1e-6)


def test_video_source_keeps_each_frames_scale_and_translation(ref):
    """Video-to-video (the pipeline with a source video, relative): source frame i gets
    ``R_d R_d0^T R_s_i``, its own scale and t, and ``exp_s_i + exp_d - exp_d0`` on the
    absolute mask's entries only."""
    srcs = [_info(ref, "source"), _info(ref, "driving3")]  # two "source frames"
    drv = [_info(ref, f"driving{i}") for i in range(3)]
    for src in srcs:
        rot_s = _rot(src)
        first = kpt.driven_keypoints(
            src, rot_s, drv[0], _rot(drv[0]), drv[0], _rot(drv[0]), source_video=True
        )
        np.testing.assert_allclose(first.numpy(), kpt.transform_keypoint(src).numpy(), atol=1e-5)
        d = drv[2]
        moved = kpt.driven_keypoints(
            src, rot_s, d, _rot(d), drv[0], _rot(drv[0]), source_video=True
        )
        rot = _rot(d) @ _rot(drv[0]).transpose(1, 2) @ rot_s
        mask = kpt._absolute_mask()
        exp = torch.where(mask, src["exp"] + d["exp"] - drv[0]["exp"], src["exp"])
        t = torch.cat([src["t"][:, :2], torch.zeros_like(src["t"][:, 2:])], dim=1)
        expected = src["scale"][..., None] * (src["kp"] @ rot + exp) + t[:, None]
        np.testing.assert_allclose(moved.numpy(), expected.numpy(), atol=1e-5)


def test_crop_matrices_match_crop_py(ref):
    for i, pts in enumerate(ref["crop_points68"]):
        np.testing.assert_allclose(
            C.source_crop_matrix(pts, 2.3, -0.125), ref["crop_source_M"][i], atol=2e-3
        )
        np.testing.assert_allclose(
            C.driving_crop_matrix(pts, 2.2, -0.1), ref["crop_driving_M"][i], atol=2e-3
        )
    # the source crop is de-rolled: the eye-to-mouth axis maps to the crop's vertical
    pts = ref["crop_points68"][1]
    m = C.source_crop_matrix(pts, 2.3, -0.125)
    eyes, mouth = C.crop_axes_points(pts) @ m[:, :2].T + m[:, 2]
    assert abs(eyes[0] - mouth[0]) < 1e-6 * 512 + 1e-3


def test_distance_ratios_match_retargeting_utils(ref):
    lmk = ref["ratio_lmk203"][0]
    eye = [
        C.distance_ratio(lmk[6], lmk[18], lmk[0], lmk[12]),
        C.distance_ratio(lmk[30], lmk[42], lmk[24], lmk[36]),
    ]
    np.testing.assert_allclose(eye, ref["ratio_eye"][0], rtol=1e-6)
    assert C.distance_ratio(lmk[90], lmk[102], lmk[48], lmk[66]) == pytest.approx(
        float(ref["ratio_lip"][0, 0]), rel=1e-6
    )


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    """Rule-B-filled MLPs and base networks written in the official layout."""
    folder = tmp_path_factory.mktemp("lp_official")
    base = {
        p: fill_state_dict(build(p), "B")
        for p in ("appearance_feature_extractor", "motion_extractor")
    }
    base["warping_module"] = build("warping_module")
    base["spade_generator"] = build("spade_generator")
    mlps = {n: fill_state_dict(build(n), "B") for n in ("stitching", "lip", "eye")}
    return save_official_layout(folder, base, mlps)


def test_official_layout_loads_strictly(official):
    mlps = load_stitching(official)
    expected = fill_state_dict(build("eye"), "B").state_dict()
    for k, v in mlps["eye"].state_dict().items():
        assert torch.equal(v, expected[k])
    nested = torch.load(official / "retargeting_models" / "stitching_retargeting_module.pth")
    assert sorted(nested) == ["retarget_eye", "retarget_mouth", "retarget_shoulder"]
    assert all(k.startswith("module.") for k in nested["retarget_eye"])
    model = load_part("appearance_feature_extractor", official)
    assert torch.equal(
        model.state_dict()["first.conv.weight"],
        fill_state_dict(build("appearance_feature_extractor"), "B").state_dict()[
            "first.conv.weight"
        ],
    )


def test_missing_file_names_it_and_its_source(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        load_part("motion_extractor", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "'motion_extractor.pth'" in msg
    assert "huggingface.co/KwaiVGI/LivePortrait" in msg


def test_wrong_key_and_wrong_shape_are_one_line(official, tmp_path):
    state = torch.load(official / "base_models" / "appearance_feature_extractor.pth")
    state["first.conv.weightx"] = state.pop("first.conv.weight")
    torch.save(state, tmp_path / "appearance_feature_extractor.pth")
    with pytest.raises(CheckpointError) as err:
        load_part("appearance_feature_extractor", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "first.conv.weight" in msg and "1 missing keys" in msg
    assert "'appearance_feature_extractor.pth'" in msg

    nested = torch.load(official / "retargeting_models" / "stitching_retargeting_module.pth")
    nested["retarget_mouth"]["module.mlp.0.weight"] = torch.zeros(128, 64)
    torch.save(nested, tmp_path / "stitching_retargeting_module.pth")
    with pytest.raises(CheckpointError) as err:
        load_stitching(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "mlp.0.weight: file [128, 64] vs expected [128, 65]" in msg
    assert "retarget_mouth" in msg

    nested = torch.load(official / "retargeting_models" / "stitching_retargeting_module.pth")
    del nested["retarget_eye"]
    torch.save(nested, tmp_path / "stitching_retargeting_module.pth")
    with pytest.raises(CheckpointError, match="no 'retarget_eye' state dict"):
        load_stitching(tmp_path)


def test_options_are_checked():
    with pytest.raises(OptionError, match="batch_size"):
        LivePortraitOptions(batch_size=0)
    with pytest.raises(OptionError, match="device"):
        LivePortraitOptions(device="tpu")
    with pytest.raises(OptionError, match="crop_scale"):
        LivePortraitOptions(crop_scale=9.0)
