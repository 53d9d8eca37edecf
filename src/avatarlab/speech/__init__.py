"""Speech timing for talking avatars: speech -> timed phones -> visemes -> mouth frames.

Paths (each result says which ran in its ``source``):

- text -> espeak-ng speech with phoneme events (:func:`synthesize`);
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
    "Voice",
    "Word",
    "acoustic_features",
    "acoustic_track",
    "align_transcript",
    "analyze_speech",
    "check_text",
    "is_english",
    "list_voices",
    "mouth_frames",
    "mouth_track",
    "n_frames",
    "phone_visemes",
    "recognize_phones",
    "speech_segments",
    "speech_spans",
    "synthesize",
    "text_to_phonemes",
    "transcribe",
    "voice_activity",
    "with_rest_pose",
]
