"""Readers that walk a local copy of a corpus in its published layout and yield clips.

Each reader is a function ``root -> Iterator[Clip]`` registered under a name
(the ``reader`` field of the dataset cards). Readers only walk the tree: they
never open media, so they run on millions of files in seconds, and empty
placeholder files are enough to test them. Clips come out sorted by path, so a
walk is deterministic.

Id rules (also in each card's ``layout``):

* ``voxceleb1`` / ``voxceleb2``: ``.../idNNNNN/VIDEO_ID/NNNNN.mp4`` -> speaker
  ``idNNNNN``, utterance ``VIDEO_ID_NNNNN``.
* ``lrs2`` / ``lrs3``: ``SPLIT/ID/NNNNN.mp4`` (+ ``NNNNN.txt``) -> speaker ``ID``,
  utterance ``NNNNN`` in the main training split (``main`` / ``trainval``),
  ``SPLIT-NNNNN`` in the others, so ids never collide across splits.
* ``hdtf``: ``RD_Name_NNN.mp4`` -> speaker = stem without its trailing ``_digits``
  parts, utterance = stem.
* ``cmlr``: ``video/sN/DATE/NAME.mp4`` with ``audio/`` and ``text/`` trees beside it.
* ``mavd``: ``SPK/COLOR_IMAGE/UTT/`` (a JPEG sequence) with ``SPK/AUDIO/UTT.wav``.
* ``cn-cvs``: ``SPK/video/STEM.mp4`` with ``SPK/audio/STEM.wav``.
* ``cn-celeb-av``: videos below an ``idNNNNN`` folder -> speaker ``idNNNNN``.
* ``folder`` (any folder of videos, also ``lsp``): a video directly in ROOT is
  its own speaker (speaker = utterance = file stem); a video below a sub-folder
  belongs to that first-level sub-folder (speaker = sub-folder name, utterance =
  the rest of the path without extension, ``/`` joined as ``_``). ROOT may also
  be a single video file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from avatarlab.errors import MediaError, OptionError
from avatarlab.registry import Registry

#: File extensions treated as videos by every reader.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts"}
)
#: File extensions of still frames in image-sequence corpora.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})

_VOX_SPEAKER = re.compile(r"^id\d+$")
_TRAILING_NUMBER = re.compile(r"(_\d+)+$")


@dataclass(frozen=True)
class Clip:
    """One utterance of a corpus, as found on disk.

    Attributes:
        path: the video file, or a folder of frames for image-sequence corpora (MAVD).
        dataset: name of the reader that found it (``"voxceleb2"``, ``"folder"``, ...).
        speaker_id: speaker (or subject) id; train/val/test splits group by it.
        utterance_id: id unique within the speaker; safe as a folder name.
        transcript_path: the corpus' transcript file, when it ships one.
        audio_path: a separate audio file, when the corpus ships audio apart from
            the video (CMLR, CN-CVS, MAVD); ``None`` means "the video's own track".
    """

    path: Path
    dataset: str
    speaker_id: str
    utterance_id: str
    transcript_path: Path | None = None
    audio_path: Path | None = None

    @property
    def key(self) -> str:
        """``speaker_id/utterance_id``: the clip's output folder below the output root."""
        return f"{self.speaker_id}/{self.utterance_id}"


Reader = Callable[[Path], Iterator[Clip]]
READERS: Registry[Reader] = Registry("dataset reader", entry_points="avatarlab.readers")
"""Reader name -> a function walking a corpus folder."""


def register_reader(*names: str) -> Callable[[Reader], Reader]:
    """Register a reader function under one or more names."""

    def wrap(fn: Reader) -> Reader:
        for name in names:
            READERS.register(name, fn)
        return fn

    return wrap


def safe_id(text: str) -> str:
    """Make ``text`` usable as one folder name: keep letters, digits and ``-_.+``.

    Path separators and other characters become ``_``; leading dots are removed
    so ids never name hidden or parent folders.
    """
    out = "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in text).lstrip(".")
    return out or "_"


def _walk_files(root: Path, extensions: frozenset[str]) -> Iterator[Path]:
    """Files below ``root`` with one of ``extensions``, in sorted order, skipping hidden entries."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in extensions:
                yield Path(dirpath) / name


def _videos(root: Path) -> Iterator[Path]:
    if root.is_file():
        if root.suffix.lower() in VIDEO_EXTENSIONS:
            yield root
        return
    yield from _walk_files(root, VIDEO_EXTENSIONS)


def _sibling(path: Path, suffix: str) -> Path | None:
    candidate = path.with_suffix(suffix)
    return candidate if candidate.is_file() else None


@register_reader("folder", "lsp")
def read_folder(root: Path) -> Iterator[Clip]:
    """Any folder of videos; see the module docstring for the speaker rule."""
    dataset = "folder"
    if root.is_file():
        for video in _videos(root):
            yield Clip(video, dataset, safe_id(video.stem), safe_id(video.stem))
        return
    for video in _videos(root):
        rel = video.relative_to(root)
        if len(rel.parts) == 1:
            speaker = utterance = safe_id(video.stem)
        else:
            speaker = safe_id(rel.parts[0])
            utterance = safe_id("_".join((*rel.parts[1:-1], video.stem)))
        yield Clip(video, dataset, speaker, utterance, _sibling(video, ".txt"))


def _read_voxceleb(root: Path, dataset: str) -> Iterator[Clip]:
    for video in _videos(root):
        speaker = video.parent.parent.name
        if not _VOX_SPEAKER.match(speaker):
            continue
        utterance = safe_id(f"{video.parent.name}_{video.stem}")
        yield Clip(video, dataset, speaker, utterance, _sibling(video, ".txt"))


@register_reader("voxceleb1")
def read_voxceleb1(root: Path) -> Iterator[Clip]:
    """VoxCeleb1 videos rebuilt from the metadata: ``.../idNNNNN/VIDEO_ID/NNNNN.mp4``."""
    return _read_voxceleb(root, "voxceleb1")


@register_reader("voxceleb2")
def read_voxceleb2(root: Path) -> Iterator[Clip]:
    """VoxCeleb2 ``dev|test/mp4/idNNNNN/VIDEO_ID/NNNNN.mp4``."""
    return _read_voxceleb(root, "voxceleb2")


def _read_lrs(root: Path, dataset: str, splits: tuple[str, ...], main: str) -> Iterator[Clip]:
    for video in _videos(root):
        split = video.parent.parent.name
        if split not in splits:
            # ROOT is the split folder itself (e.g. .../main): take its name.
            split = root.name if root.name in splits else main
        utterance = video.stem if split == main else f"{split}-{video.stem}"
        yield Clip(
            video,
            dataset,
            safe_id(video.parent.name),
            safe_id(utterance),
            _sibling(video, ".txt"),
        )


@register_reader("lrs2")
def read_lrs2(root: Path) -> Iterator[Clip]:
    """LRS2-BBC ``main|pretrain/PROGRAMME_ID/NNNNN.mp4`` with ``NNNNN.txt`` transcripts."""
    return _read_lrs(root, "lrs2", ("main", "pretrain"), "main")


@register_reader("lrs3")
def read_lrs3(root: Path) -> Iterator[Clip]:
    """LRS3-TED ``trainval|pretrain|test/YOUTUBE_ID/NNNNN.mp4`` with ``NNNNN.txt``."""
    return _read_lrs(root, "lrs3", ("trainval", "pretrain", "test"), "trainval")


@register_reader("hdtf")
def read_hdtf(root: Path) -> Iterator[Clip]:
    """HDTF clips ``RD|WDA|WRA_Name_NNN.mp4`` anywhere below ``root``."""
    for video in _videos(root):
        speaker = _TRAILING_NUMBER.sub("", video.stem) or video.stem
        yield Clip(video, "hdtf", safe_id(speaker), safe_id(video.stem))


@register_reader("cmlr")
def read_cmlr(root: Path) -> Iterator[Clip]:
    """CMLR ``video/sN/DATE/NAME.mp4`` paired with ``audio/...wav`` and ``text/...txt``."""
    video_root = root / "video"
    if not video_root.is_dir():
        return
    for video in _videos(video_root):
        rel = video.relative_to(video_root)
        audio = root / "audio" / rel.with_suffix(".wav")
        text = root / "text" / rel.with_suffix(".txt")
        yield Clip(
            video,
            "cmlr",
            safe_id(rel.parts[0]),
            safe_id("_".join((*rel.parts[1:-1], video.stem))),
            text if text.is_file() else None,
            audio if audio.is_file() else None,
        )


@register_reader("mavd")
def read_mavd(root: Path) -> Iterator[Clip]:
    """MAVD ``SPK/COLOR_IMAGE/UTT/*_color.jpg`` sequences with ``SPK/AUDIO/UTT.wav``."""
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        colour = speaker_dir / "COLOR_IMAGE"
        if not colour.is_dir():
            continue
        for utt_dir in sorted(p for p in colour.iterdir() if p.is_dir()):
            audio = speaker_dir / "AUDIO" / f"{utt_dir.name}.wav"
            text = speaker_dir / "TEXT" / f"{utt_dir.name}.txt"
            yield Clip(
                utt_dir,
                "mavd",
                safe_id(speaker_dir.name),
                safe_id(utt_dir.name),
                text if text.is_file() else None,
                audio if audio.is_file() else None,
            )


@register_reader("cn-cvs")
def read_cn_cvs(root: Path) -> Iterator[Clip]:
    """CN-CVS ``news|speech/SPK/video/STEM.mp4`` paired with ``SPK/audio/STEM.wav``."""
    for video in _videos(root):
        if video.parent.name != "video":
            continue
        speaker_dir = video.parent.parent
        audio = speaker_dir / "audio" / f"{video.stem}.wav"
        yield Clip(
            video,
            "cn-cvs",
            safe_id(speaker_dir.name),
            safe_id(video.stem),
            None,
            audio if audio.is_file() else None,
        )


@register_reader("cn-celeb-av")
def read_cn_celeb_av(root: Path) -> Iterator[Clip]:
    """CN-CELEB-AV: videos below a per-person ``idNNNNN`` folder."""
    for video in _videos(root):
        rel = video.relative_to(root).parts
        owners = [i for i, part in enumerate(rel[:-1]) if _VOX_SPEAKER.match(part)]
        if not owners:
            continue
        i = owners[-1]
        utterance = "_".join((*rel[i + 1 : -1], video.stem))
        yield Clip(video, "cn-celeb-av", rel[i], safe_id(utterance))


def reader_names() -> list[str]:
    """Names accepted by :func:`read_clips`, sorted."""
    return READERS.names()


def read_clips(root: str | os.PathLike[str], dataset: str = "folder") -> list[Clip]:
    """All clips of a local corpus copy, walked with the reader named ``dataset``.

    Args:
        root: the corpus folder (or, for ``"folder"``, a single video file).
        dataset: a reader name (:func:`reader_names`) or a card name ("VoxCeleb2").

    Returns:
        The clips sorted by ``(speaker_id, utterance_id)``.

    Raises:
        MediaError: ``root`` does not exist.
        OptionError: unknown reader, or two clips share a speaker/utterance id.
    """
    path = Path(root)
    if not path.exists():
        raise MediaError(f"{path} does not exist: pass the folder holding your copy of the corpus")
    key = _reader_key(dataset)
    if key not in READERS:
        raise OptionError(
            f"no reader named {dataset!r}; choose one of: {', '.join(reader_names())}"
        )
    reader = READERS.get(key)
    clips = sorted(reader(path), key=lambda c: (c.speaker_id, c.utterance_id))
    seen: dict[str, Path] = {}
    for clip in clips:
        if clip.key in seen:
            raise OptionError(
                f"{seen[clip.key]} and {clip.path} both map to {clip.key}; "
                "rename one of them or choose the reader that matches the layout"
            )
        seen[clip.key] = clip.path
    return clips


def _reader_key(dataset: str) -> str:
    if dataset in READERS:
        return dataset
    from avatarlab.datasets.cards import card_key, load_cards

    for card in load_cards():
        if card.reader and card_key(dataset) == card.key:
            return card.reader
    return dataset
