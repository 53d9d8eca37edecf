"""Layout readers on tiny synthetic trees (empty files are enough: readers never open media)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarlab.datasets.readers import Clip, read_clips, reader_names, safe_id
from avatarlab.errors import MediaError, OptionError


def make_tree(root: Path, files: list[str]) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def ids(clips: list[Clip]) -> list[tuple[str, str]]:
    return [(c.speaker_id, c.utterance_id) for c in clips]


def test_voxceleb2_layout(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        [
            "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4",
            "dev/mp4/id00012/21Uxsk56VDQ/00002.mp4",
            "dev/mp4/id00012/_-bad_Id-/00001.mp4",
            "test/mp4/id00017/01dfn2spqyE/00001.mp4",
            "dev/mp4/id00012/21Uxsk56VDQ/notes.txt",
            "dev/mp4/stray/x/00001.mp4",  # not below an idNNNNN folder
        ],
    )
    clips = read_clips(root, "voxceleb2")
    assert ids(clips) == [
        ("id00012", "21Uxsk56VDQ_00001"),
        ("id00012", "21Uxsk56VDQ_00002"),
        ("id00012", "_-bad_Id-_00001"),
        ("id00017", "01dfn2spqyE_00001"),
    ]
    assert all(c.dataset == "voxceleb2" and c.audio_path is None for c in clips)
    # ROOT may be the mp4/ folder itself, and the card name works as reader name
    assert ids(read_clips(root / "dev" / "mp4", "VoxCeleb2")) == ids(clips)[:3]


def test_lrs2_and_lrs3_layouts(tmp_path: Path) -> None:
    lrs2 = make_tree(
        tmp_path / "lrs2",
        [
            "main/5535415699068794046/00001.mp4",
            "main/5535415699068794046/00001.txt",
            "main/5535415699068794046/00002.mp4",
            "pretrain/5535415699068794046/00001.mp4",
        ],
    )
    clips = read_clips(lrs2, "lrs2")
    assert ids(clips) == [
        ("5535415699068794046", "00001"),
        ("5535415699068794046", "00002"),
        ("5535415699068794046", "pretrain-00001"),
    ]
    assert clips[0].transcript_path == lrs2 / "main/5535415699068794046/00001.txt"
    assert clips[1].transcript_path is None
    # ROOT = the split folder itself
    assert ids(read_clips(lrs2 / "pretrain", "lrs2")) == [("5535415699068794046", "pretrain-00001")]

    lrs3 = make_tree(
        tmp_path / "lrs3",
        [
            "trainval/0Fi83BHQsMA/00002.mp4",
            "test/0akiEFwtkyA/00001.mp4",
            "test/0akiEFwtkyA/00001.txt",
        ],
    )
    assert ids(read_clips(lrs3, "lrs3")) == [
        ("0Fi83BHQsMA", "00002"),
        ("0akiEFwtkyA", "test-00001"),
    ]


def test_hdtf_speaker_is_stem_without_clip_numbers(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        [
            "WDA_AlexandriaOcasioCortez_000.mp4",
            "WDA_AlexandriaOcasioCortez_001.mp4",
            "clips/RD_Radio11_0.mp4",
            "RD_Radio11_1_2.mp4",
        ],
    )
    assert ids(read_clips(root, "hdtf")) == [
        ("RD_Radio11", "RD_Radio11_0"),
        ("RD_Radio11", "RD_Radio11_1_2"),
        ("WDA_AlexandriaOcasioCortez", "WDA_AlexandriaOcasioCortez_000"),
        ("WDA_AlexandriaOcasioCortez", "WDA_AlexandriaOcasioCortez_001"),
    ]


def test_cmlr_pairs_video_audio_text(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        [
            "video/s1/20090727/section_1_000.53_004.21.mp4",
            "audio/s1/20090727/section_1_000.53_004.21.wav",
            "text/s1/20090727/section_1_000.53_004.21.txt",
            "video/s2/20101105/section_3_001.00_003.10.mp4",
        ],
    )
    first, second = read_clips(root, "cmlr")
    assert (first.speaker_id, first.utterance_id) == ("s1", "20090727_section_1_000.53_004.21")
    assert first.audio_path == root / "audio/s1/20090727/section_1_000.53_004.21.wav"
    assert first.transcript_path == root / "text/s1/20090727/section_1_000.53_004.21.txt"
    assert (
        second.speaker_id == "s2" and second.audio_path is None and second.transcript_path is None
    )


def test_mavd_frame_folders(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        [
            "M1/COLOR_IMAGE/1/005_087584377_color.jpg",
            "M1/COLOR_IMAGE/1/006_087617722_color.jpg",
            "M1/AUDIO/1.wav",
            "M1/TEXT/1.txt",
            "F02/COLOR_IMAGE/7/001_000000000_color.jpg",
        ],
    )
    clips = read_clips(root, "mavd")
    assert ids(clips) == [("F02", "7"), ("M1", "1")]
    m1 = clips[1]
    assert m1.path == root / "M1/COLOR_IMAGE/1" and m1.path.is_dir()
    assert m1.audio_path == root / "M1/AUDIO/1.wav" and m1.transcript_path == root / "M1/TEXT/1.txt"
    assert clips[0].audio_path is None


def test_cn_cvs_and_cn_celeb_av(tmp_path: Path) -> None:
    cvs = make_tree(
        tmp_path / "cvs",
        [
            "speech/s02270/video/s02270_001_00001.mp4",
            "speech/s02270/audio/s02270_001_00001.wav",
            "news/n001/video/n001_002_00003.mp4",
            "news/n001/landmark/n001_002_00003.mp4",  # not a video/ folder
        ],
    )
    clips = read_clips(cvs, "cn-cvs")
    assert ids(clips) == [("n001", "n001_002_00003"), ("s02270", "s02270_001_00001")]
    assert clips[1].audio_path == cvs / "speech/s02270/audio/s02270_001_00001.wav"
    assert clips[0].audio_path is None

    av = make_tree(
        tmp_path / "av", ["dev/id00001/interview/001.mp4", "eval/id00002/002.mp4", "misc/x.mp4"]
    )
    assert ids(read_clips(av, "cn-celeb-av")) == [("id00001", "interview_001"), ("id00002", "002")]


def test_folder_reader_rules(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        [
            "alice.mp4",
            "bob/take 1.mov",
            "bob/day2/take1.mkv",
            "bob/take1.txt",
            ".hidden/x.mp4",
            "notes.txt",
        ],
    )
    clips = read_clips(root)  # "folder" is the default
    assert ids(clips) == [("alice", "alice"), ("bob", "day2_take1"), ("bob", "take_1")]
    assert clips[0].transcript_path is None
    single = read_clips(root / "alice.mp4")
    assert ids(single) == [("alice", "alice")]
    assert ids(read_clips(root, "lsp")) == ids(clips)


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        read_clips(tmp_path / "missing")
    with pytest.raises(OptionError, match="choose one of"):
        read_clips(tmp_path, "nope")
    make_tree(tmp_path, ["a.mp4", "a.mkv"])
    with pytest.raises(OptionError, match="both map to a/a"):
        read_clips(tmp_path)
    assert "voxceleb2" in reader_names() and "folder" in reader_names()


def test_safe_id() -> None:
    assert safe_id("a/b c") == "a_b_c"
    assert safe_id("..x") == "x"
    assert safe_id("") == "_"
    assert safe_id("张三_01") == "张三_01"
