"""Speech timing for talking avatars: speech -> timed phones -> visemes -> mouth frames.

Paths (each result says which ran in its ``source``):

- text -> espeak-ng speech with phoneme events (:func:`synthesize`), or a Piper
  neural voice (``voice="piper:..."``, optional) aligned below; :func:`voice_catalog`
  lists the voices;
- English audio -> PocketSphinx forced alignment of a transcript
  (:func:`align_transcript`), of the words it recognises itself (:func:`transcribe`,
  the default without a transcript), or phone recognition (:func:`recognize_phones`);
- any audio -> voice activity + spectral shape (:func:`acoustic_track`,
  :class:`StreamingMouth` for live audio).

Phones map to 15 visemes and blend with coarticulation into per-frame mouth
parameters (:func:`mouth_track`); :func:`analyze_speech` chooses the path.
"""

from avatarlab.speech.align import (
    Recognition,
    Word,
    align_transcript,
    recognize_phones,
    transcribe,
)
from avatarlab.speech.analysis import SpeechAnalysis, analyze_speech, is_english
from avatarlab.speech.features import (
    AcousticFeatures,
    StreamingMouth,
    acoustic_features,
    acoustic_track,
    speech_segments,
    speech_spans,
    voice_activity,
)
from avatarlab.speech.phones import SILENCE, SOURCES, Phone
from avatarlab.speech.piper import piper_available
from avatarlab.speech.tts import (
    Utterance,
    Voice,
    check_text,
    list_voices,
    synthesize,
    text_to_phonemes,
)
from avatarlab.speech.visemes import (
    MOUTH_PARAMS,
    VISEME_TARGETS,
    VISEMES,
    CoarticulationOptions,
    MouthTrack,
    mouth_frames,
    mouth_track,
    n_frames,
    phone_visemes,
    with_rest_pose,
)
from avatarlab.speech.voices import (
    VariantInfo,
    VoiceInfo,
    add_piper_voice,
    catalog_dict,
    espeak_variants,
    find_voice,
    voice_catalog,
)

__all__ = [
    "MOUTH_PARAMS",
    "SILENCE",
    "SOURCES",
    "VISEMES",
    "VISEME_TARGETS",
    "AcousticFeatures",
    "CoarticulationOptions",
    "MouthTrack",
    "Phone",
    "Recognition",
    "SpeechAnalysis",
    "StreamingMouth",
    "Utterance",
    "VariantInfo",
    "Voice",
    "VoiceInfo",
    "Word",
    "acoustic_features",
    "acoustic_track",
    "add_piper_voice",
    "align_transcript",
    "analyze_speech",
    "catalog_dict",
    "check_text",
    "espeak_variants",
    "find_voice",
    "is_english",
    "list_voices",
    "mouth_frames",
    "mouth_track",
    "n_frames",
    "phone_visemes",
    "piper_available",
    "recognize_phones",
    "speech_segments",
    "speech_spans",
    "synthesize",
    "text_to_phonemes",
    "transcribe",
    "voice_catalog",
    "voice_activity",
    "with_rest_pose",
]
