"""Voices: espeak pitch, range and rate; the voice catalogue; Piper voices.

Piper voices are real neural models nobody may download here, so the Piper tests build a
tiny ONNX model with Piper's interface (inputs ``input``, ``input_lengths``, ``scales``;
output audio, 256 samples per phoneme id, times the length scale) by writing the ONNX
protobuf by hand: Piper's runtime loads and runs it exactly as it would a voice.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from avatarlab.errors import AvatarLabError, CheckpointError, MissingWeightsError, OptionError
from avatarlab.speech import (
    add_piper_voice,
    catalog_dict,
    find_voice,
    synthesize,
    voice_catalog,
)
from avatarlab.speech.piper import remove_piper_voices
from avatarlab.speech.voices import VariantInfo, VoiceInfo, espeak_variants, espeak_voices

VOWELS = "Mama made a banana pie, and we ate it all up at noon."


def f0_track(audio: np.ndarray, sr: int, fmin: float = 50.0, fmax: float = 500.0) -> np.ndarray:
    """f0 (Hz) of the voiced 50 ms frames (10 ms hop) by unbiased autocorrelation."""
    frame, hop = int(0.05 * sr), int(0.01 * sr)
    n = 1 + (len(audio) - frame) // hop
    frames = audio[np.arange(frame)[None, :] + hop * np.arange(n)[:, None]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = (frames**2).sum(axis=1)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * frame, axis=1)) ** 2, axis=1)[:, :frame]
    ac = ac * (frame / (frame - np.arange(frame)))[None, :]
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    periodic = ac[np.arange(n), lag] / np.maximum(ac[:, 0], 1e-12)
    voiced = (periodic > 0.6) & (energy > 0.05 * energy.max())
    return sr / lag[voiced]


def test_pitch_raises_the_fundamental_frequency() -> None:
    medians = []
    for pitch in (20, 50, 80):
        utt = synthesize(VOWELS, pitch=pitch)
        f0 = f0_track(utt.audio, utt.sample_rate)
        assert len(f0) > 50  # a vowel-rich sentence is mostly voiced
        medians.append(float(np.median(f0)))
    assert medians[0] < medians[1] < medians[2], medians
    assert medians[2] > 1.4 * medians[0], medians
    # Pitch leaves the timing alone; None is the voice's own pitch (= 50).
    default = synthesize(VOWELS)
    np.testing.assert_array_equal(synthesize(VOWELS, pitch=50).audio, default.audio)
    assert abs(synthesize(VOWELS, pitch=80).duration - default.duration) < 0.1 * default.duration


def test_pitch_range_widens_the_intonation() -> None:
    def spread(pitch_range: int) -> float:
        utt = synthesize(VOWELS, pitch_range=pitch_range)
        f0 = f0_track(utt.audio, utt.sample_rate)
        return float(np.percentile(f0, 90) - np.percentile(f0, 10))

    flat, wide = spread(0), spread(100)
    assert wide > 2 * flat, (flat, wide)


def test_rate_changes_duration() -> None:
    slow = synthesize(VOWELS, rate_wpm=100)
    fast = synthesize(VOWELS, rate_wpm=400)
    assert fast.duration < 0.5 * slow.duration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate_wpm": 79}, "speaking rate 79 wpm is out of range: use 80..450"),
        ({"rate_wpm": 451}, "80..450"),
        ({"pitch": -1}, "pitch -1 is out of range: use 0..100"),
        ({"pitch": 101}, "0..100"),
        ({"pitch": float("nan")}, "pitch nan is out of range"),
        ({"pitch_range": 150}, "pitch range 150 is out of range: use 0..100"),
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(OptionError, match=message) as info:
        synthesize("hello", **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_catalogue_lists_languages_and_ids_round_trip() -> None:
    catalog = voice_catalog()
    assert all(isinstance(v, VoiceInfo) and v.engine == "espeak" for v in catalog)
    ids = [v.id for v in catalog]
    assert len(set(ids)) == len(ids)  # ids are unique (shared codes use the voice file)
    assert {"en-us", "en-gb", "fr-fr", "de"} <= set(ids)
    languages = {v.language_name for v in catalog}
    assert {"English", "French", "German", "Chinese"} <= languages and len(languages) > 50
    # Grouped: sorted by language name, so each language is one run.
    names = [v.language_name.casefold() for v in catalog]
    assert names == sorted(names)
    en_us = find_voice("en-us")
    assert (en_us.name, en_us.language, en_us.language_name) == (
        "English (America)",
        "en-us",
        "English",
    )
    assert en_us.to_dict() == {
        "id": "en-us",
        "name": "English (America)",
        "language": "en-us",
        "language_name": "English",
        "engine": "espeak",
        "controls": ["rate", "pitch", "pitch_range"],
    }
    json.dumps(catalog_dict())  # JSON-ready
    groups = catalog_dict()["languages"]
    english = next(g for g in groups if g["language_name"] == "English")
    assert "en-us" in [v["id"] for v in english["voices"]]
    # Every id speaks; voices sharing a language code (Cantonese) stay distinct.
    shared = [v for v in catalog if "/" in v.id]
    for v in [find_voice("en-us"), find_voice("fr-fr"), *shared]:
        utt = synthesize("one two three", voice=v.id)
        assert utt.duration > 0.3 and utt.voice == v.id
    if len(shared) == 2:
        a, b = (synthesize("ni hao", voice=v.id) for v in shared)
        assert len(a.audio) != len(b.audio) or not np.array_equal(a.audio, b.audio)
    with pytest.raises(OptionError, match="unknown voice 'xx'.*en-us"):
        find_voice("xx")


def test_variants_apply_to_any_voice() -> None:
    variants = {v.id: v for v in catalog_dict_variants()}
    assert variants["f3"].gender == "female" and variants["m3"].gender == "male"
    assert len(variants) > 20
    male = synthesize(VOWELS, voice="fr-fr")
    female = synthesize(VOWELS, voice="fr-fr+f3")  # a language code with a variant
    assert np.median(f0_track(female.audio, 22050)) > 1.5 * np.median(f0_track(male.audio, 22050))
    np.testing.assert_array_equal(synthesize(VOWELS, voice="FR-FR+F3").audio, female.audio)
    info = find_voice("en-us+f3")
    assert (info.id, info.name, info.language) == (
        "en-us+f3",
        "English (America), female3",
        "en-us",
    )
    with pytest.raises(OptionError, match="unknown espeak voice variant 'nope'.*f3"):
        synthesize("hello", voice="en-us+nope")  # espeak alone would ignore it
    with pytest.raises(OptionError, match="unknown voice 'en-us\\+nope'"):
        find_voice("en-us+nope")


def catalog_dict_variants() -> list[VariantInfo]:
    listed = catalog_dict()["espeak_variants"]
    variants = list(espeak_variants())
    assert listed == [v.to_dict() for v in variants]
    return variants


def test_catalogue_is_cached() -> None:
    espeak_voices()
    import time

    start = time.process_time()
    for _ in range(100):
        voice_catalog()
    assert time.process_time() - start < 0.5  # no espeak-ng load per call (about 20 ms each)
    assert espeak_voices() is espeak_voices()


# --- Piper -------------------------------------------------------------------------


def test_piper_missing_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _write_voice(tmp_path)
    monkeypatch.setitem(sys.modules, "piper", None)  # `import piper` raises ImportError
    for call in (lambda: add_piper_voice(model), lambda: synthesize("hi", voice=f"piper:{model}")):
        with pytest.raises(OptionError, match=r"pip install piper-tts.*espeak-ng voices work"):
            call()
    assert synthesize("hi").duration > 0  # espeak is unaffected


def _refused(error: type[AvatarLabError], pattern: str, call: Callable[[], object]) -> None:
    """``call()`` raises ``error`` with one line of message matching ``pattern``."""
    with pytest.raises(error, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_piper_file_errors(tmp_path: Path) -> None:
    missing = f"piper:{tmp_path / 'nope.onnx'}"
    _refused(
        MissingWeightsError,
        "^Piper voice file not found: .*nope.onnx: pass the path of a .onnx voice",
        lambda: synthesize("hello", voice=missing),
    )
    _refused(
        OptionError,
        "not a Piper voice: pass its .onnx",
        lambda: add_piper_voice(tmp_path / "voice.json"),
    )
    model = tmp_path / "lonely.onnx"
    model.write_bytes(b"x")
    add = functools.partial(add_piper_voice, model)
    _refused(MissingWeightsError, "has no config lonely.onnx.json beside it", add)
    config = tmp_path / "lonely.onnx.json"
    config.write_text("{not json")
    _refused(CheckpointError, r"lonely.onnx.json is not valid \(not readable JSON", add)
    config.write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    _refused(CheckpointError, r"not valid \(no 'espeak'\).*came with the voice", add)
    chinese = json.loads(_write_voice(tmp_path / "zh").with_suffix(".onnx.json").read_text())
    config.write_text(json.dumps({**chinese, "phoneme_type": "pinyin"}))
    _refused(OptionError, "uses pinyin phonemes, whose model Piper downloads", add)
    _refused(
        OptionError,
        "unknown Piper voice 'piper:lonely'.*add_piper_voice",
        lambda: synthesize("hello", voice="piper:lonely"),
    )


@pytest.fixture
def piper_voice(tmp_path: Path) -> Iterator[Path]:
    pytest.importorskip("piper", reason="piper-tts is not installed")
    remove_piper_voices()
    yield _write_voice(tmp_path)
    remove_piper_voices()


def test_piper_voice_speaks_through_synthesize(piper_voice: Path) -> None:
    info = add_piper_voice(piper_voice)
    assert info.id == "piper:tiny-en" and info.engine == "piper"
    assert (info.name, info.language, info.language_name) == ("tiny (x_low)", "en-us", "English")
    assert info.controls == ("rate",)
    assert find_voice("piper:tiny-en") == info
    catalog = voice_catalog()
    english = [v.id for v in catalog if v.language_name == "English"]
    assert "piper:tiny-en" in english and english[-1] == "piper:tiny-en"

    espeak_before = synthesize("Bob met Mary.").audio
    utt = synthesize("Hello there. How are you?", voice=info.id, with_phones=False)
    assert (utt.sample_rate, utt.source, utt.voice, utt.phones) == (16000, "piper", info.id, [])
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert 0.99 < np.abs(utt.audio).max() <= 1.0  # Piper normalises each sentence
    # The model's tone: 150 Hz, found by the same f0 estimate as espeak's.
    assert np.median(f0_track(utt.audio, utt.sample_rate)) == pytest.approx(150, rel=0.03)
    # 256 samples per phoneme id: a longer text is longer; rate scales Piper's length.
    longer = synthesize(
        "Hello there. How are you? Fine, thank you.", voice=info.id, with_phones=False
    )
    assert longer.duration > 1.3 * utt.duration
    fast = synthesize("Hello there. How are you?", voice=info.id, rate_wpm=350, with_phones=False)
    assert fast.duration == pytest.approx(utt.duration / 2, rel=0.05)
    # Path ids work too; espeak output is untouched by Piper's own espeak copy.
    by_path = synthesize(
        "Hello there. How are you?", voice=f"piper:{piper_voice}", with_phones=False
    )
    np.testing.assert_array_equal(by_path.audio, utt.audio)
    np.testing.assert_array_equal(synthesize("Bob met Mary.").audio, espeak_before)
    # Phones: English voices are aligned or recognised (ARPAbet); a tone has no words,
    # so this one falls back to phone recognition, still timed within the audio.
    timed = synthesize("Hello there.", voice=info.id)
    assert timed.phones and all(p.source.startswith("pocketsphinx") for p in timed.phones)
    assert all(0 <= p.start < p.end <= timed.duration + 0.011 for p in timed.phones)
    for kwargs in ({"pitch": 70}, {"pitch_range": 20}):
        with pytest.raises(OptionError, match="Piper voices have no pitch"):
            synthesize("hello", voice=info.id, **kwargs)  # type: ignore[arg-type]
    assert synthesize("hello", voice=info.id, pitch=50, with_phones=False).duration > 0


def test_piper_non_english_and_broken_models(piper_voice: Path, tmp_path: Path) -> None:
    german = _write_voice(tmp_path / "de", stem="tiny-de", espeak="de", code="de_DE")
    utt = synthesize("Guten Tag", voice=f"piper:{german}")
    assert utt.phones == [] and utt.duration > 0  # no aligner for German
    assert add_piper_voice(german).language_name == "German"
    broken = _write_voice(tmp_path / "broken", stem="broken")
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(
        CheckpointError, match="broken.onnx could not be loaded .*not a Piper voice"
    ):
        synthesize("hello", voice=f"piper:{broken}")


# --- a tiny model with Piper's interface, as ONNX protobuf ----------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


_FLOAT, _INT64 = 1, 7  # TensorProto.DataType


def _scalar(name: str, value: float, dtype: int) -> bytes:
    raw = struct.pack("<f", value) if dtype == _FLOAT else struct.pack("<q", int(value))
    return _int(2, dtype) + _bytes(8, name) + _bytes(9, raw)  # TensorProto, dims ()


def _value(name: str, dtype: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    tensor_type = _int(1, dtype) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))  # ValueInfoProto


def _node(op: str, inputs: list[str], outputs: list[str], to: int | None = None) -> bytes:
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    body += _bytes(4, op)
    if to is not None:  # AttributeProto: name, i, type=INT
        body += _bytes(5, _bytes(1, "to") + _int(3, to) + _int(20, 2))
    return body


def tiny_piper_model(sample_rate: int = 16000, hz: float = 150.0) -> bytes:
    """ONNX model: audio = 0.5 sin(2 pi hz t), 256 * length_scale samples per phoneme id."""
    nodes = [
        _node("Shape", ["input"], ["shape"]),
        _node("Gather", ["shape", "one_i"], ["n"]),
        _node("Cast", ["n"], ["n_f"], to=_FLOAT),
        _node("Gather", ["scales", "one_i"], ["length_scale"]),
        _node("Mul", ["n_f", "hop"], ["base"]),
        _node("Mul", ["base", "length_scale"], ["limit"]),
        _node("Range", ["zero", "limit", "one"], ["t"]),
        _node("Mul", ["t", "omega"], ["phase"]),
        _node("Sin", ["phase"], ["tone"]),
        _node("Mul", ["tone", "half"], ["output"]),
    ]
    constants = [
        _scalar("one_i", 1, _INT64),
        _scalar("hop", 256.0, _FLOAT),
        _scalar("zero", 0.0, _FLOAT),
        _scalar("one", 1.0, _FLOAT),
        _scalar("omega", 2 * math.pi * hz / sample_rate, _FLOAT),
        _scalar("half", 0.5, _FLOAT),
    ]
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "tiny_piper")
    graph += b"".join(_bytes(5, c) for c in constants)
    graph += _bytes(11, _value("input", _INT64, [1, "phonemes"]))
    graph += _bytes(11, _value("input_lengths", _INT64, [1]))
    graph += _bytes(11, _value("scales", _FLOAT, [3]))
    graph += _bytes(12, _value("output", _FLOAT, ["samples"]))
    opset = _bytes(1, "") + _int(2, 13)
    return _int(1, 7) + _bytes(2, "avatarlab-tests") + _bytes(7, graph) + _bytes(8, opset)


def _write_voice(
    folder: Path, stem: str = "tiny-en", espeak: str = "en-us", code: str = "en_US"
) -> Path:
    """A tiny Piper voice (model and ``.onnx.json``) in ``folder``; the model's path."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{stem}.onnx"
    model.write_bytes(tiny_piper_model())
    try:
        from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP as id_map
    except ImportError:
        id_map = {"_": [0], "^": [1], "$": [2], " ": [3], "a": [14]}
    config = {
        "dataset": "tiny",
        "audio": {"sample_rate": 16000, "quality": "x_low"},
        "espeak": {"voice": espeak},
        "language": {"code": code},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "num_symbols": 256,
        "num_speakers": 1,
        "phoneme_id_map": id_map,
    }
    (folder / f"{stem}.onnx.json").write_text(json.dumps(config))
    return model
