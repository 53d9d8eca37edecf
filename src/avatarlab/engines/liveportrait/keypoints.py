"""LivePortrait's implicit-keypoint algebra: pose bins to degrees, Eqn. 2, relative motion.

Re-implemented from KwaiVGI/LivePortrait ``src/utils/camera.py``
(``headpose_pred_to_degree``, ``get_rotation_matrix``), ``src/live_portrait_wrapper.py``
(``get_kp_info``, ``transform_keypoint``, ``stitching``, ``retarget_eye``/``lip``) and the
animation loop of ``src/live_portrait_pipeline.py`` (relative / absolute motion per
animation region, driving multiplier). A *keypoint info* is a dict of tensors:
``pitch``/``yaw``/``roll`` ``(B, 1)`` degrees, ``t (B, 3)``, ``exp (B, 21, 3)``,
``scale (B, 1)``, ``kp (B, 21, 3)`` (canonical keypoints).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

KpInfo = dict[str, torch.Tensor]
Region = Literal["all", "expression", "pose", "lips", "eyes"]

LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
"""Implicit keypoints that carry the mouth (the pipeline's ``animation_region="lip"``)."""
EYE_KEYPOINTS = (11, 13, 15, 16, 18)
"""Implicit keypoints that carry the eyes (``animation_region="eyes"``)."""


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 66)`` pose-bin logits -> ``(B,)`` degrees: ``sum(softmax * idx) * 3 - 97.5``.

    Anything that is not 66 bins wide is returned unchanged (already degrees).
    """
    if logits.ndim < 2 or logits.shape[1] != 66:
        return logits
    idx = torch.arange(66, dtype=logits.dtype, device=logits.device)
    return torch.sum(F.softmax(logits, dim=1) * idx, dim=1) * 3 - 97.5


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` row-vector rotation ``(Rz(roll) Ry(yaw) Rx(pitch))^T`` from degrees.

    Keypoints ``(B, N, 3)`` rotate as ``kp @ R`` (the reference's convention).
    """
    x, y, z = (a.reshape(-1) / 180 * math.pi for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)

    def mat(*rows: torch.Tensor) -> torch.Tensor:
        return torch.stack(rows, dim=1).reshape(-1, 3, 3)

    rot_x = mat(one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos())
    rot_y = mat(y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos())
    rot_z = mat(z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one)
    return (rot_z @ rot_y @ rot_x).transpose(1, 2)


def kp_info(raw: dict[str, torch.Tensor]) -> KpInfo:
    """The motion extractor's raw outputs refined: angles in degrees ``(B, 1)``,
    ``kp`` and ``exp`` as ``(B, 21, 3)`` (``wrapper.get_kp_info``)."""
    b = raw["kp"].shape[0]
    out = dict(raw)
    for key in ("pitch", "yaw", "roll"):
        out[key] = bins_to_degrees(raw[key])[:, None]
    out["kp"] = raw["kp"].reshape(b, -1, 3)
    out["exp"] = raw["exp"].reshape(b, -1, 3)
    return out


def transform_keypoint(info: KpInfo) -> torch.Tensor:
    """Eqn. 2: ``scale * (kp @ R + exp)``, then ``+ t`` on x and y only -> ``(B, 21, 3)``."""
    kp = info["kp"]
    b = kp.shape[0]
    kp = kp.reshape(b, -1, 3)
    rot = rotation_matrix(
        bins_to_degrees(info["pitch"]), bins_to_degrees(info["yaw"]), bins_to_degrees(info["roll"])
    )
    x = (kp @ rot + info["exp"].reshape(b, -1, 3)) * info["scale"][..., None]
    return torch.cat([x[..., :2] + info["t"][:, None, :2], x[..., 2:]], dim=-1)


def _concat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)], dim=1)


def stitch(mlp: nn.Module, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """Driving keypoints corrected by the stitching MLP so the crop pastes back seamlessly.

    The MLP reads ``[x_s, x_d]`` (126) and gives 63 keypoint offsets plus a shared
    ``(tx, ty)``; returns ``x_d + offsets`` with ``(tx, ty)`` added to x and y.
    """
    b, n = x_s.shape[:2]
    delta = mlp(_concat(x_s, x_d))
    moved = x_d + delta[:, : 3 * n].reshape(b, n, 3)
    shift = delta[:, 3 * n : 3 * n + 2].reshape(b, 1, 2)
    return torch.cat([moved[..., :2] + shift, moved[..., 2:]], dim=-1)


def retarget(mlp: nn.Module, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Keypoint offsets ``(B, 21, 3)`` from the eye (ratio ``(B, 3)``) or lip (``(B, 2)``) MLP.

    Eye ratios: the source's left and right eye-open ratios and the wanted one; lip
    ratios: the source's lip-open ratio and the wanted one.
    """
    return mlp(_concat(x_s, ratio)).reshape(x_s.shape[0], -1, 3)


def _absolute_mask() -> torch.Tensor:
    """``(21, 3)`` expression entries an absolute driving frame replaces (the pipeline's
    list: keypoints 1, 2, 6, 11-20 whole; y of 3 and 4; z of 5 and 8; y and z of 9)."""
    mask = torch.zeros(21, 3, dtype=torch.bool)
    mask[[1, 2, 6, *range(11, 21)]] = True
    mask[3:5, 1] = True
    mask[[5, 8], 2] = True
    mask[9, 1:] = True
    return mask


def driven_keypoints(
    source: KpInfo,
    rot_s: torch.Tensor,
    driving: KpInfo,
    rot_d: torch.Tensor,
    first: KpInfo,
    rot_first: torch.Tensor,
    region: Region = "all",
    relative: bool = True,
    still: tuple[int, ...] = (),
    source_video: bool = False,
) -> torch.Tensor:
    """The source's keypoints moved by driving frames (before stitching), ``(B, 21, 3)``.

    Relative (the pipeline's default): ``R = (R_d R_d0^T) R_s``, ``exp = exp_s + (exp_d -
    exp_d0)``, ``scale = scale_s * scale_d / scale_d0``, ``t = t_s + (t_d - t_d0)``; absolute:
    the driving frame's ``R`` and ``t``, part of its expression (:func:`_absolute_mask`),
    the source's scale. ``region`` limits what moves as the pipeline's
    ``animation_region`` does (``expression``: no pose, ``pose``: no expression,
    ``lips``/``eyes``: only those keypoints' expression; scale follows only for ``all``).
    ``still`` keypoints keep the source's expression. ``source_video``: the source is a
    frame of a video (the pipeline's video-to-video mode): relative motion keeps that
    frame's own scale and translation, composes the driving rotation change with its own
    rotation and adds the driving expression change only to the absolute mask's entries.
    The translation's z is zeroed; the result is ``scale * (kp_s @ R + exp) + t``. Source
    tensors have batch 1 or B (one source frame per driving frame).
    """
    moves_pose = region in ("all", "pose")
    exp_s = source["exp"].expand_as(driving["exp"])
    if relative:
        rot = (rot_d @ rot_first.transpose(1, 2)) @ rot_s if moves_pose else rot_s
        exp_driven = exp_s + (driving["exp"] - first["exp"])
        if source_video:
            scale, t, take = source["scale"], source["t"], _absolute_mask()
        else:
            scale = (
                source["scale"] * (driving["scale"] / first["scale"])
                if region == "all"
                else source["scale"]
            )
            t = source["t"] + (driving["t"] - first["t"]) if moves_pose else source["t"]
            take = torch.ones(21, 3, dtype=torch.bool)
    else:
        rot = rot_d if moves_pose else rot_s
        exp_driven = driving["exp"]
        scale = source["scale"]
        t = driving["t"] if moves_pose else source["t"]
        take = _absolute_mask()
    if region in ("lips", "eyes"):
        rows = torch.zeros(21, 3, dtype=torch.bool)
        rows[list(LIP_KEYPOINTS if region == "lips" else EYE_KEYPOINTS)] = True
        take = rows
    elif region == "pose":
        take = torch.zeros(21, 3, dtype=torch.bool)
    if still:
        take = take.clone()
        take[list(still)] = False
    exp = torch.where(take.to(exp_s.device), exp_driven, exp_s)
    t = torch.cat([t[..., :2], torch.zeros_like(t[..., 2:])], dim=-1)
    return scale[..., None] * (source["kp"] @ rot + exp) + t[:, None, :]


def finish(
    x_s: torch.Tensor,
    x_d: torch.Tensor,
    stitching: nn.Module | None,
    offsets: torch.Tensor | None = None,
    lip_normal: torch.Tensor | None = None,
    multiplier: float = 1.0,
) -> torch.Tensor:
    """Algorithm 1's last steps on driven keypoints ``x_d (B, 21, 3)``.

    Retargeting ``offsets`` (eye/lip deltas) are added before stitching; the lip
    normalisation delta ``lip_normal`` (source lips closed) after it, as the pipeline
    does when no retargeting runs; then ``x_s + (x - x_s) * multiplier`` (the
    pipeline's ``driving_multiplier``).
    """
    x = x_d if offsets is None else x_d + offsets
    if stitching is not None:
        x = stitch(stitching, x_s.expand_as(x), x)
    if lip_normal is not None and offsets is None:
        x = x + lip_normal
    return x_s + (x - x_s) * multiplier
