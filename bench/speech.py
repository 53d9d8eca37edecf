"""Speed of each speech-timing path on one core, as real-time factors.

For an English clip (default ``../shared/data/audio/english_radio_8s.wav``, 8 s)
and a sentence of text, prints seconds per call and x-real-time (audio seconds
per compute second) for: espeak TTS + mouth track, PocketSphinx forced alignment,
phone recognition, transcription, the acoustic path (Silero VAD + spectra), the
streaming mouth (25 fps, 20 ms chunks) and the coarticulation alone. The
in-process reference is decoding the same file with ``avatarlab.media``. "cold"
includes loading the models on first use; "warm" is the best of ``--repeat`` calls.

    python bench/speech.py [AUDIO] [--transcript TEXT] [--repeat N] [--no-pin]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avatarlab.media import read_audio
from avatarlab.speech import (
    StreamingMouth,
    acoustic_track,
    align_transcript,
    analyze_speech,
    mouth_track,
    recognize_phones,
    transcribe,
)

DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared/data/audio/english_radio_8s.wav"
DEFAULT_TRANSCRIPT = (
    "holidays are a time of celebrating with loved ones enjoying the festivities and "
    "melinda was back to school but for many this year has been"
)
TEXT = "Avatars can speak any text in real time on a plain computer, without a graphics card."
CHUNK_S = 0.02


def pin_to_one_core() -> str:
    """Pin to CPU 0 and keep torch to one thread; describe what was done."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        return "pinned to CPU 0, torch 1 thread"
    return "torch 1 thread (CPU pinning unsupported here)"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(cold seconds, best warm seconds, last result)."""
    t0 = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t0
    warm = cold
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        warm = min(warm, time.perf_counter() - t0)
    return cold, warm, result


def stream(audio: np.ndarray) -> int:
    mouth = StreamingMouth(16000, 25.0)
    step = int(CHUNK_S * 16000)
    frames = sum(len(mouth.push(audio[i : i + step])) for i in range(0, len(audio), step))
    return frames + len(mouth.flush())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", default=str(DEFAULT_AUDIO))
    parser.add_argument("--transcript", default=DEFAULT_TRANSCRIPT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    print("cpu:", "not pinned" if args.no_pin else pin_to_one_core())

    _, decode_s, audio = timed(lambda: read_audio(args.audio, sample_rate=16000), args.repeat)
    seconds = len(audio) / 16000
    print(f"audio: {args.audio} ({seconds:.1f} s); reference decode {decode_s * 1000:.1f} ms")
    speech = analyze_speech(text=TEXT)
    phones = align_transcript(audio, args.transcript).phones

    rows: list[tuple[str, float, Callable[[], Any]]] = [
        ("espeak text -> mouth", speech.duration, lambda: analyze_speech(text=TEXT)),
        ("align (transcript)", seconds, lambda: align_transcript(audio, args.transcript)),
        ("phone recognition", seconds, lambda: recognize_phones(audio)),
        ("transcription", seconds, lambda: transcribe(audio)),
        ("acoustic track", seconds, lambda: acoustic_track(audio, 16000, 25.0)),
        (f"streaming ({CHUNK_S * 1000:.0f} ms chunks)", seconds, lambda: stream(audio)),
        ("coarticulation only", seconds, lambda: mouth_track(phones, 25.0, seconds)),
    ]
    print(f"{'path':32s} {'cold s':>8s} {'warm s':>8s} {'x real time':>12s} {'x decode':>9s}")
    for name, duration, fn in rows:
        cold, warm, _ = timed(fn, args.repeat)
        print(f"{name:32s} {cold:8.3f} {warm:8.3f} {duration / warm:12.1f} {warm / decode_s:9.1f}")


if __name__ == "__main__":
    main()
