"""Pairing predictions with references (and audio) by file stem.

A *pair* is a prediction (generated video) and, optionally, its reference (the real
video) and driving audio. Two files make one pair whatever their names; two folders
are matched by file stem, and files without a partner are listed, not evaluated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from avatarlab.errors import MediaError, OptionError

#: Files taken from a folder of videos (by suffix, case-insensitive).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})
#: Files taken from a folder of audio (videos also work: their audio is used).
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus"})


@dataclass(frozen=True)
class Pair:
    """One clip to evaluate: prediction, reference (None: no-reference metrics only), audio."""

    name: str
    pred: Path
    ref: Path | None = None
    audio: Path | None = None


@dataclass(frozen=True)
class PairPlan:
    """The pairs found, and the files that had no partner (matched by file stem)."""

    pairs: tuple[Pair, ...]
    unmatched_pred: tuple[Path, ...] = ()
    unmatched_ref: tuple[Path, ...] = ()
    unmatched_audio: tuple[Path, ...] = ()


def _media_files(folder: Path, suffixes: frozenset[str]) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise OptionError(
                f"{folder} holds two files named {p.stem!r} ({out[p.stem].name}, {p.name}): "
                "pairs are matched by name, so keep one"
            )
        out[p.stem] = p
    return out


def _existing(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what} {p} does not exist: pass a video file or a folder of videos")
    return p


def match_pairs(
    pred: str | os.PathLike[str],
    ref: str | os.PathLike[str] | None = None,
    audio: str | os.PathLike[str] | None = None,
) -> PairPlan:
    """Pair predictions with references (and audio) by file stem.

    ``pred``/``ref`` are both files (one pair, whatever their names) or both folders
    (videos matched by stem; files without a partner are listed in the plan). ``audio``
    is one file (used for every pair) or a folder matched by stem like the references.

    Raises:
        MediaError: a path does not exist, or the prediction folder holds no videos.
        OptionError: a file and a folder mixed, two files of one stem, no stem in common.
    """
    p = _existing(pred, "prediction")
    r = None if ref is None else _existing(ref, "reference")
    a = None if audio is None else _existing(audio, "audio")
    if p.is_file():
        if r is not None and r.is_dir():
            raise OptionError(
                f"the prediction {p} is a file but the reference {r} is a folder: "
                "pass two files or two folders"
            )
        if a is not None and a.is_dir():
            audio_files = _media_files(a, AUDIO_SUFFIXES | VIDEO_SUFFIXES)
            a = audio_files.get(p.stem)
        return PairPlan((Pair(p.stem, p, r, a),))
    preds = _media_files(p, VIDEO_SUFFIXES)
    if not preds:
        raise MediaError(f"{p} holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
    if r is not None and r.is_file():
        raise OptionError(
            f"the prediction {p} is a folder but the reference {r} is a file: "
            "pass two files or two folders"
        )
    refs = _media_files(r, VIDEO_SUFFIXES) if r is not None else {}
    audios: dict[str, Path] = {}
    if a is not None and a.is_dir():
        audios = _media_files(a, AUDIO_SUFFIXES | VIDEO_SUFFIXES)
    names = sorted(preds) if r is None else sorted(set(preds) & set(refs))
    if r is not None and not names:
        raise OptionError(
            f"no file name of {p} matches one of {r}: pairs are matched by file stem "
            f"(e.g. {next(iter(preds))} needs {r}/{next(iter(preds))}.mp4)"
        )
    pairs = tuple(
        Pair(n, preds[n], refs.get(n), audios.get(n) if a is not None and a.is_dir() else a)
        for n in names
    )
    return PairPlan(
        pairs=pairs,
        unmatched_pred=tuple(preds[n] for n in sorted(preds) if r is not None and n not in refs),
        unmatched_ref=tuple(refs[n] for n in sorted(refs) if n not in preds),
        unmatched_audio=tuple(audios[n] for n in sorted(audios) if n not in set(names)),
    )


__all__ = ["AUDIO_SUFFIXES", "VIDEO_SUFFIXES", "Pair", "PairPlan", "match_pairs"]
