"""Facts every layer shares, named once (a light module: no imports).

The field's talking-face work runs at 25 video frames per second and 16 kHz mono
speech (Wav2Lip, SyncNet, HDTF, LRS2/3, VoxCeleb preparation scripts); modules
import these instead of retyping the numbers.
"""

SPEECH_RATE = 16000
"""Sample rate of speech audio for analysis, mel features and datasets (Hz)."""

DEFAULT_FPS = 25.0
"""Frame rate of generated video and prepared datasets unless a source says otherwise."""
