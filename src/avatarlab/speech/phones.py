"""Timed phones and the two phone sets avatarlab reads: ARPAbet and espeak mnemonics.

PocketSphinx speaks ARPAbet (CMUdict's 39 phones plus ``SIL`` and noise fillers);
espeak-ng reports its own ASCII mnemonics (``@``, ``oU``, ``tS``, ``_:`` ...), which
are language-specific but share families. :data:`ESPEAK_TO_ARPABET` converts the
English mnemonics (and the common cross-language ones) to ARPAbet; it serves the
viseme table and the pronunciation of out-of-vocabulary words for alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Which analysis produced a phone or a mouth track.
Source = Literal[
    "espeak", "pocketsphinx-align", "pocketsphinx-words", "pocketsphinx-phones", "acoustic"
]
SOURCES: tuple[str, ...] = (
    "espeak",
    "pocketsphinx-align",
    "pocketsphinx-words",
    "pocketsphinx-phones",
    "acoustic",
)

#: The pause symbol every path is normalised to for silence.
SILENCE = "SIL"


@dataclass(frozen=True)
class Phone:
    """One phone with its time span.

    Attributes:
        symbol: an espeak mnemonic (``source == "espeak"``) or an ARPAbet phone
            (PocketSphinx paths), without stress marks; pauses are ``"SIL"``.
        start: start time in seconds from the start of the audio.
        end: end time in seconds (exclusive), ``end > start``.
        source: which analysis produced it, one of :data:`SOURCES`.
    """

    symbol: str
    start: float
    end: float
    source: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    @property
    def center(self) -> float:
        """Midpoint in seconds."""
        return 0.5 * (self.start + self.end)


def merge_silences(phones: list[Phone]) -> list[Phone]:
    """Join consecutive ``"SIL"`` phones into one."""
    out: list[Phone] = []
    for p in phones:
        if out and p.symbol == SILENCE and out[-1].symbol == SILENCE:
            out[-1] = Phone(SILENCE, out[-1].start, p.end, p.source)
        else:
            out.append(p)
    return out


#: The 39 CMUdict phones (stress digits removed).
# fmt: off
ARPABET_PHONES: frozenset[str] = frozenset([
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
])
# fmt: on
#: PocketSphinx fillers that stand for silence or non-speech noise.
ARPABET_FILLERS: frozenset[str] = frozenset(
    {"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+NOISE+", "+SMACK+", "+UM+", "+UH+"}
)

#: espeak-ng mnemonics (as in its phoneme events, stress marks removed) -> ARPAbet.
#: English (en-us / en) in full; a multi-phone value expands an r-coloured vowel or
#: a syllabic consonant. Pauses map to SIL.
# fmt: off
ESPEAK_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # pauses
    "_": ("SIL",), "_:": ("SIL",), "_!": ("SIL",), "_|": ("SIL",), "_^_": ("SIL",),
    # consonants
    "p": ("P",), "b": ("B",), "m": ("M",), "f": ("F",), "v": ("V",),
    "T": ("TH",), "D": ("DH",), "t": ("T",), "d": ("D",), "t#": ("T",), "d#": ("D",),
    "n": ("N",), "l": ("L",), "r": ("R",), "r-": ("R",), "s": ("S",), "z": ("Z",),
    "S": ("SH",), "Z": ("ZH",), "tS": ("CH",), "dZ": ("JH",), "k": ("K",), "g": ("G",),
    "N": ("NG",), "h": ("HH",), "w": ("W",), "j": ("Y",), "?": ("HH",),
    "n-": ("AH", "N"), "l-": ("AH", "L"), "m-": ("AH", "M"), "@L": ("AH", "L"),
    # vowels
    "a": ("AE",), "a#": ("AH",), "aa": ("AA",), "a:": ("AA",), "A": ("AA",), "A:": ("AA",),
    "A@": ("AA", "R"), "aI": ("AY",), "aI@": ("AY", "ER"), "aI3": ("AY", "ER"),
    "aU": ("AW",), "aU@": ("AW", "ER"), "@": ("AH",), "@2": ("AH",), "@5": ("AH",),
    "@-": ("AH",), "3": ("ER",), "3:": ("ER",), "V": ("AH",), "e": ("EH",), "E": ("EH",),
    "e@": ("EH", "R"), "eI": ("EY",), "i": ("IY",), "i:": ("IY",), "i@": ("IH", "R"),
    "i@3": ("IH", "R"), "I": ("IH",), "I2": ("IH",), "I#": ("IH",), "0": ("AA",),
    "o": ("OW",), "o:": ("AO",), "O": ("AO",), "O:": ("AO",), "O@": ("AO", "R"),
    "o@": ("AO", "R"), "oU": ("OW",), "OI": ("OY",), "u": ("UW",), "u:": ("UW",),
    "U": ("UH",), "U@": ("UH", "R"),
}
# fmt: on


def strip_stress(symbol: str) -> str:
    """Remove CMUdict stress digits and espeak stress marks: ``"AH0"`` -> ``"AH"``."""
    symbol = symbol.strip().lstrip("',%=")
    if symbol[-1:] in ("0", "1", "2") and symbol[:-1] in ARPABET_PHONES:
        return symbol[:-1]
    return symbol


def espeak_to_arpabet(symbol: str) -> tuple[str, ...]:
    """ARPAbet phones for an espeak mnemonic, or ``()`` when it has no English equal."""
    return ESPEAK_TO_ARPABET.get(strip_stress(symbol), ())
