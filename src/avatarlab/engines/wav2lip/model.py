"""The Wav2Lip generator and its SyncNet_color lip-sync expert as torch modules.

Re-implemented from the published architecture (Prajwal et al., "A Lip Sync Expert Is All You
Need", ACM MM 2020; Rudrabha/Wav2Lip ``models/``) so that the official checkpoint files load
with strict key and shape checks: module names and layer order give exactly the reference
state-dict keys (``face_encoder_blocks.1.0.conv_block.0.weight``, ...).

Conventions shared by both networks (those of the reference training data):

- faces are **BGR** (OpenCV order), float32 in ``[0, 1]``, ``(B, C, H, W)``;
- audio is a Wav2Lip mel window ``(B, 1, 80, 16)``: 80 mel bands x 16 columns (0.2 s at
  80 columns per second), values in ``[-4, 4]`` (:func:`avatarlab.media.melspectrogram`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FACE_SIZE = 96
"""Side of the square face crop both networks see, in pixels."""
SYNC_FRAMES = 5
"""Consecutive frames the expert scores at once (stacked on channels: 5 x 3 = 15)."""

_Pair = int | tuple[int, int]


class ConvBlock(nn.Module):
    """Conv (or transposed conv) -> BatchNorm -> optional residual add -> ReLU.

    The reference's ``Conv2d``/``Conv2dTranspose`` unit; parameters live under
    ``conv_block.0`` (conv) and ``conv_block.1`` (batch norm), as in the checkpoints.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: _Pair,
        stride: _Pair = 1,
        padding: _Pair = 0,
        *,
        residual: bool = False,
        transpose: bool = False,
        output_padding: int = 0,
    ) -> None:
        super().__init__()
        conv: nn.Module
        if transpose:
            conv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return F.relu(out)


def _res(channels: int, n: int) -> list[nn.Module]:
    """``n`` shape-preserving residual 3x3 blocks."""
    return [ConvBlock(channels, channels, 3, 1, 1, residual=True) for _ in range(n)]


def _down(
    cin: int, cout: int, kernel: _Pair, stride: _Pair, padding: int, n_res: int
) -> list[nn.Module]:
    """One encoder stage: a (strided) conv from ``cin`` to ``cout``, then residual blocks."""
    return [ConvBlock(cin, cout, kernel, stride, padding), *_res(cout, n_res)]


def _up(cin: int, cout: int, stride: int, n_res: int) -> nn.Sequential:
    """One decoder stage: a 3x3 transposed conv (x2 when ``stride`` is 2), then residual blocks."""
    pad, out_pad = (1, 1) if stride == 2 else (0, 0)
    first = ConvBlock(cin, cout, 3, stride, pad, transpose=True, output_padding=out_pad)
    return nn.Sequential(first, *_res(cout, n_res))


def _audio_encoder(res_at_256: int) -> nn.Sequential:
    """Mel window (B, 1, 80, 16) -> embedding (B, 512, 1, 1); shared by both networks."""
    return nn.Sequential(
        *_down(1, 32, 3, 1, 1, 2),
        *_down(32, 64, 3, (3, 1), 1, 2),
        *_down(64, 128, 3, 3, 1, 2),
        *_down(128, 256, 3, (3, 2), 1, res_at_256),
        ConvBlock(256, 512, 3, 1, 0),
        ConvBlock(512, 512, 1, 1, 0),
    )


class Wav2Lip(nn.Module):
    """The Wav2Lip generator: a U-Net whose bottleneck is the audio embedding.

    ``forward(audio, faces)``: ``audio`` (B, 1, 80, 16) mel windows, ``faces`` (B, 6, 96, 96)
    BGR in [0, 1], channels 0-2 the target face with its lower half zeroed, channels 3-5 an
    unmasked reference face of the same person. Returns (B, 3, 96, 96) BGR in [0, 1].
    Sequence inputs (B, T, 1, 80, 16) and (B, 6, T, 96, 96) give (B, 3, T, 96, 96), as in
    the reference training scripts.
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),  # 96
                nn.Sequential(*_down(16, 32, 3, 2, 1, 2)),  # 48
                nn.Sequential(*_down(32, 64, 3, 2, 1, 3)),  # 24
                nn.Sequential(*_down(64, 128, 3, 2, 1, 2)),  # 12
                nn.Sequential(*_down(128, 256, 3, 2, 1, 2)),  # 6
                nn.Sequential(*_down(256, 512, 3, 2, 1, 1)),  # 3
                nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),  # 1
            ]
        )
        self.audio_encoder = _audio_encoder(res_at_256=1)
        # Each stage's input is the previous output concatenated with the matching skip.
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),  # 1
                _up(1024, 512, 1, 1),  # 3
                _up(1024, 512, 2, 2),  # 6
                _up(768, 384, 2, 2),  # 12
                _up(512, 256, 2, 2),  # 24
                _up(320, 128, 2, 2),  # 48
                _up(160, 64, 2, 2),  # 96
            ]
        )
        self.output_block = nn.Sequential(
            ConvBlock(80, 32, 3, 1, 1),
            nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        sequence = faces.dim() == 5
        if sequence:  # fold time into the batch, time-major like the reference
            batch, steps = audio.shape[0], audio.shape[1]
            audio = audio.transpose(0, 1).flatten(0, 1)
            faces = faces.permute(2, 0, 1, 3, 4).flatten(0, 1)
        skips = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(audio)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        out = self.output_block(x)
        if sequence:
            out = out.reshape(steps, batch, *out.shape[1:]).permute(1, 2, 0, 3, 4)
        return out


class SyncNetColor(nn.Module):
    """The SyncNet_color lip-sync expert: embeds 5 lower-half faces and the matching audio.

    ``forward(audio, faces)``: ``audio`` (B, 1, 80, 16); ``faces`` (B, 15, 48, 96), five BGR
    frames in [0, 1] stacked on channels, lower half of the 96x96 crop only. Returns
    ``(audio_emb, face_emb)``, each (B, 512) and L2-normalised, so their dot product is the
    cosine similarity the expert's loss uses (:func:`sync_probability`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder = nn.Sequential(
            ConvBlock(15, 32, 7, 1, 3),
            *_down(32, 64, 5, (1, 2), 1, 2),
            *_down(64, 128, 3, 2, 1, 3),
            *_down(128, 256, 3, 2, 1, 2),
            *_down(256, 512, 3, 2, 1, 2),
            ConvBlock(512, 512, 3, 2, 1),
            ConvBlock(512, 512, 3, 1, 0),
            ConvBlock(512, 512, 1, 1, 0),
        )
        self.audio_encoder = _audio_encoder(res_at_256=2)

    def forward(
        self, audio: torch.Tensor, faces: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        face_emb = self.face_encoder(faces).flatten(1)
        audio_emb = self.audio_encoder(audio).flatten(1)
        return F.normalize(audio_emb, p=2, dim=1), F.normalize(face_emb, p=2, dim=1)


def sync_probability(audio_emb: torch.Tensor, face_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of expert embeddings, (B,), read as P(in sync) by the BCE sync loss.

    Both inputs are (B, 512); they need not be normalised. Values are in [0, 1] for the
    expert's outputs because both embeddings come out of a ReLU (non-negative).
    """
    return F.cosine_similarity(audio_emb, face_emb, dim=1)


def state_dict_schema(model_cls: type[nn.Module]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``model_cls()``'s state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = model_cls()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
