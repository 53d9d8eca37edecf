"""Phones -> visemes -> per-frame mouth parameters with coarticulation.

Viseme set (15 classes, the Oculus/Meta lip-sync set; ARPAbet and espeak examples):

=====  ==========================  =====  ======  ======  =====  =====
name   phones                      jaw    spread  closed  raise  teeth
=====  ==========================  =====  ======  ======  =====  =====
sil    pause, silence              0.00    0.00   1.00    0.00   0.00
PP     P B M / p b m               0.04    0.00   1.00    0.00   0.00
FF     F V / f v                   0.12    0.10   0.00    0.35   0.90
TH     TH DH / T D                 0.20    0.15   0.00    0.20   0.80
DD     T D / t d                   0.22    0.20   0.00    0.15   0.60
kk     K G NG / k g N              0.28    0.10   0.00    0.10   0.40
CH     CH JH SH ZH / tS dZ S Z     0.18   -0.45   0.00    0.35   0.80
SS     S Z / s z                   0.10    0.35   0.00    0.20   1.00
nn     N L / n l                   0.22    0.15   0.00    0.10   0.50
RR     R ER / r 3:                 0.30   -0.35   0.00    0.15   0.30
aa     AA AE AH / a aa V A:        0.90    0.15   0.00    0.20   0.50
E      EH EY / E e @               0.65    0.45   0.00    0.25   0.60
I      IH IY Y / I i j             0.50    0.70   0.00    0.20   0.70
O      AO OW OY / O: 0 oU          0.55   -0.60   0.00    0.10   0.20
U      UH UW W / U u: w            0.35   -0.90   0.00    0.05   0.10
=====  ==========================  =====  ======  ======  =====  =====

Mouth parameters (:data:`MOUTH_PARAMS`): ``jaw_open`` [0, 1] (0 = teeth together,
1 = widest), ``lip_spread`` [-1, 1] (negative = rounded/puckered, positive = corners
pulled back), ``lip_closed`` [0, 1] (1 = lips pressed together whatever the jaw),
``upper_lip_raise`` [0, 1], ``teeth`` [0, 1] (how visible the teeth should be).
Every vowel's jaw (>= 0.35) exceeds every consonant's (<= 0.30), so the jaw cycles
with syllables; rounded vowels open less (protruded lips narrow the aperture).
That table is *clear* articulation, the style of synthesised (espeak) speech. Recorded
human speech is *conversational* (:data:`CONVERSATIONAL_JAW`, measured on issue 4's
real clips, see :class:`CoarticulationOptions`): tongue consonants keep the lips about
as far apart as their vowels, and rounded vowels narrow the inner-lip gap to a third
of an open vowel's (the protruded lips close the aperture while the jaw drops).
Diphthongs (AY AW EY OW OY, espeak aI aU eI oU OI) split 60/40 into two visemes;
HH, glottal stops and unknown symbols are transparent (they take the shape of
their neighbours).

Symbols map by their source: ARPAbet (PocketSphinx) through :data:`ARPABET_VISEMES`;
espeak mnemonics through :data:`~avatarlab.speech.phones.ESPEAK_TO_ARPABET`, then
:data:`ESPEAK_VISEMES` (other languages' phones), then a family fallback on the
first character (:func:`phone_visemes` documents it). The two sets clash on single
letters (espeak ``D`` is ARPAbet ``DH``), hence the source.

Coarticulation follows Cohen & Massaro (1993): each phone exerts a dominance
``alpha * exp(-d / tau)`` on every parameter, where ``d`` is the distance from the
phone's central plateau; a frame's parameters are the dominance-weighted average
of the targets (plus a weak rest pose). Lingual consonants leave the lips free
(low lip-spread dominance), so rounding spreads over them, and hold the jaw only
weakly (the jaw is not what shapes a t, n, k or r: it stays near the neighbouring
vowels' opening instead of shutting between every syllable). Frame ``k`` is shown
over ``[k/fps, (k+1)/fps)`` and carries the blend at its midpoint plus the
anticipation (:attr:`CoarticulationOptions.anticipation_s`: visible articulation
leads the sound). Bilabials are a hard constraint on the frames of their sound
(those whose midpoint falls inside the P/B/M, or the frame holding its centre):
the sound of a p, b or m is the lip closure itself, so anticipation moves the
approach and the release, never the closure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import OptionError
from avatarlab.speech.phones import ARPABET_FILLERS, SILENCE, Phone, espeak_to_arpabet, strip_stress

# fmt: off
VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U",
)
# fmt: on
MOUTH_PARAMS: tuple[str, ...] = ("jaw_open", "lip_spread", "lip_closed", "upper_lip_raise", "teeth")
VOWEL_VISEMES: frozenset[str] = frozenset({"aa", "E", "I", "O", "U"})
BILABIAL = "PP"

#: Target mouth parameters per viseme, in :data:`MOUTH_PARAMS` order (table above).
VISEME_TARGETS: dict[str, tuple[float, float, float, float, float]] = {
    "sil": (0.00, 0.00, 1.00, 0.00, 0.00),
    "PP": (0.04, 0.00, 1.00, 0.00, 0.00),
    "FF": (0.12, 0.10, 0.00, 0.35, 0.90),
    "TH": (0.20, 0.15, 0.00, 0.20, 0.80),
    "DD": (0.22, 0.20, 0.00, 0.15, 0.60),
    "kk": (0.28, 0.10, 0.00, 0.10, 0.40),
    "CH": (0.18, -0.45, 0.00, 0.35, 0.80),
    "SS": (0.10, 0.35, 0.00, 0.20, 1.00),
    "nn": (0.22, 0.15, 0.00, 0.10, 0.50),
    "RR": (0.30, -0.35, 0.00, 0.15, 0.30),
    "aa": (0.90, 0.15, 0.00, 0.20, 0.50),
    "E": (0.65, 0.45, 0.00, 0.25, 0.60),
    "I": (0.50, 0.70, 0.00, 0.20, 0.70),
    "O": (0.55, -0.60, 0.00, 0.10, 0.20),
    "U": (0.35, -0.90, 0.00, 0.05, 0.10),
}

#: Dominance (alpha, tau in seconds) per viseme: lips-critical shapes dominate and
#: reach their target quickly; the weakly visible velars yield to neighbours.
# fmt: off
VISEME_DOMINANCE: dict[str, tuple[float, float]] = {
    "sil": (0.6, 0.036), "PP": (1.0, 0.018), "FF": (1.6, 0.024), "TH": (1.0, 0.024),
    "DD": (0.8, 0.024), "kk": (0.6, 0.027), "CH": (1.3, 0.027), "SS": (1.1, 0.024),
    "nn": (0.7, 0.024), "RR": (0.9, 0.030), "aa": (1.0, 0.042), "E": (1.0, 0.039),
    "I": (1.0, 0.039), "O": (1.2, 0.045), "U": (1.3, 0.048),
}
# fmt: on
#: Per-parameter dominance factors: lingual consonants leave the lips free, so
#: rounding spreads over them (anticipatory rounding in "stew"), and hold the jaw only
#: weakly (``LINGUAL_JAW``); sibilants and labiodentals keep a firm jaw (their
#: frication needs the teeth close).
LINGUAL_JAW = 0.5
LINGUAL_VISEMES: tuple[str, ...] = ("TH", "DD", "kk", "nn", "RR")
DOMINANCE_SCALE: dict[str, dict[str, float]] = {
    "TH": {"lip_spread": 0.25},
    "DD": {"lip_spread": 0.25},
    "kk": {"lip_spread": 0.2},
    "nn": {"lip_spread": 0.25},
    "SS": {"lip_spread": 0.5},
}
#: Conversational (recorded) speech: ``jaw_open`` targets that replace the clear table's.
#: Per-viseme inner-lip gaps measured on issue 4's four clips (relative to each clip's
#: widest): t d n l k g s z ~0.45-0.5 like the open vowels (~0.5), o/u ~0.15-0.2; and
#: conversational speech is hypoarticulated, so open vowels open less than in clear speech.
CONVERSATIONAL_JAW: dict[str, float] = {
    "TH": 0.35, "DD": 0.35, "kk": 0.35, "nn": 0.35, "CH": 0.30, "SS": 0.25,
    "aa": 0.80, "O": 0.25, "U": 0.10,
}  # fmt: skip
#: Conversational speech holds the jaw even less on tongue consonants.
CONVERSATIONAL_LINGUAL_JAW = 0.25
Style = Literal["auto", "clear", "conversational"]
#: Default lead of the mouth over the sound per style, seconds (see
#: :attr:`CoarticulationOptions.anticipation_s`).
ANTICIPATION_S: dict[str, float] = {"clear": 0.02, "conversational": 0.04}
#: ``lip_closed`` passes through a smoothstep between these values, so lips are
#: either clearly closed or clearly apart instead of half-closed next to a P.
LIP_CLOSE_EDGES = (0.25, 0.75)
#: Weight of the rest pose (sil) everywhere, so frames far from any phone relax.
REST_WEIGHT = 0.02
#: Share of a diphthong's duration given to its first viseme.
DIPHTHONG_SPLIT = 0.6

#: ARPAbet -> viseme(s). SIL and PocketSphinx fillers are "sil"; HH is transparent.
# fmt: off
ARPABET_VISEMES: dict[str, tuple[str, ...]] = {
    "P": ("PP",), "B": ("PP",), "M": ("PP",), "F": ("FF",), "V": ("FF",),
    "TH": ("TH",), "DH": ("TH",), "T": ("DD",), "D": ("DD",), "K": ("kk",), "G": ("kk",),
    "NG": ("kk",), "CH": ("CH",), "JH": ("CH",), "SH": ("CH",), "ZH": ("CH",),
    "S": ("SS",), "Z": ("SS",), "N": ("nn",), "L": ("nn",), "R": ("RR",), "ER": ("RR",),
    "AA": ("aa",), "AE": ("aa",), "AH": ("aa",), "EH": ("E",), "IH": ("I",), "IY": ("I",),
    "Y": ("I",), "AO": ("O",), "UH": ("U",), "UW": ("U",), "W": ("U",),
    "AY": ("aa", "I"), "AW": ("aa", "U"), "EY": ("E", "I"), "OW": ("O", "U"), "OY": ("O", "I"),
    "HH": (),
}
# fmt: on
#: espeak mnemonics with no English equivalent, or whose English mapping would mislead.
# fmt: off
ESPEAK_VISEMES: dict[str, tuple[str, ...]] = {
    "@": ("E",), "@2": ("E",), "@5": ("E",), "@-": ("E",), "a#": ("E",),
    "y": ("U",), "y:": ("U",), "Y": ("O",), "Y:": ("O",), "W": ("O",), "u-": ("U",),
    "x": ("kk",), "X": ("kk",), "G": ("kk",), "q": ("kk",), "R": ("RR",), "R2": ("RR",),
    "C": ("CH",), "c": ("CH",), "J": ("CH",), "ts": ("SS",), "dz": ("SS",),
    "s.": ("CH",), "z.": ("CH",), "ts.": ("CH",), "n^": ("nn",), "l^": ("nn",), "L": ("nn",),
    "B": ("FF",), "F": ("FF",), "r*": ("DD",), "*": ("DD",), "ch": ("CH",),
}
# fmt: on
#: First character of an espeak mnemonic -> viseme (the family fallback).
# fmt: off
_FAMILY: dict[str, str] = {
    **dict.fromkeys("aA&V", "aa"), **dict.fromkeys("eE@3", "E"), **dict.fromkeys("iIj", "I"),
    **dict.fromkeys("oO0", "O"), **dict.fromkeys("uUwyYW", "U"), **dict.fromkeys("pbm", "PP"),
    **dict.fromkeys("fvBF", "FF"), **dict.fromkeys("TD", "TH"), **dict.fromkeys("td*", "DD"),
    **dict.fromkeys("nlL", "nn"), **dict.fromkeys("kgNxXGqQ", "kk"),
    **dict.fromkeys("SZCcJ", "CH"), **dict.fromkeys("sz", "SS"), **dict.fromkeys("rR", "RR"),
    "_": "sil",
}
# fmt: on


def phone_visemes(symbol: str, source: str) -> tuple[str, ...]:
    """Viseme(s) for a phone symbol; ``()`` means transparent (takes its neighbours' shape).

    ARPAbet symbols (PocketSphinx sources) use :data:`ARPABET_VISEMES`. espeak symbols
    (``source == "espeak"``) try, in order: :data:`ESPEAK_VISEMES`; the English
    mnemonic table (espeak -> ARPAbet -> visemes); the family of the first character
    (vowels a/e/i/o/u/y by height and rounding, consonants by place of articulation,
    ``_`` pause); else transparent (``h``, ``?``, tone and length marks).
    """
    sym = strip_stress(symbol)
    if sym == SILENCE or sym in ARPABET_FILLERS:
        return ("sil",)
    if source != "espeak":
        return ARPABET_VISEMES.get(sym, ())
    if sym in ESPEAK_VISEMES:
        return ESPEAK_VISEMES[sym]
    arpabet = espeak_to_arpabet(sym)
    if arpabet:
        return tuple(v for a in arpabet for v in phone_visemes(a, "arpabet"))
    family = _FAMILY.get(sym[:1])
    return (family,) if family else ()


def n_frames(duration: float, fps: float) -> int:
    """Frames needed to cover ``duration`` seconds at ``fps`` (the last one may be partial)."""
    return max(0, math.ceil(duration * fps - 1e-6))


@dataclass(frozen=True, eq=False)
class MouthTrack:
    """Per-frame mouth parameters.

    Attributes:
        params: float32 ``(N, K)``, columns in :data:`MOUTH_PARAMS` order.
        fps: frames per second; frame ``k`` (global index ``start_frame + k``) shows the
            mouth at time ``(start_frame + k + 0.5) / fps``.
        source: the analysis path that produced it (see :data:`~avatarlab.speech.phones.SOURCES`).
        start_frame: global index of row 0 (streaming chunks continue a track).
        viseme_weights: float32 ``(N, len(VISEMES))`` rows summing to 1, or ``None``
            (acoustic path); useful for picking a mouth exemplar by shape.
    """

    params: np.ndarray
    fps: float
    source: str
    start_frame: int = 0
    viseme_weights: np.ndarray | None = field(default=None)

    def __len__(self) -> int:
        return int(self.params.shape[0])

    def column(self, name: str) -> np.ndarray:
        """One parameter over time, ``(N,)`` float32."""
        return self.params[:, MOUTH_PARAMS.index(name)]

    @property
    def jaw_open(self) -> np.ndarray:
        return self.column("jaw_open")

    @property
    def lip_spread(self) -> np.ndarray:
        return self.column("lip_spread")

    @property
    def lip_closed(self) -> np.ndarray:
        return self.column("lip_closed")

    @property
    def opening(self) -> np.ndarray:
        """Expected inner-lip gap in [0, 1]: ``jaw_open * (1 - lip_closed)``."""
        return self.jaw_open * (1.0 - self.lip_closed)

    @property
    def times(self) -> np.ndarray:
        """Time each frame shows, seconds ``(N,)``."""
        return (self.start_frame + np.arange(len(self)) + 0.5) / self.fps

    @staticmethod
    def concatenate(tracks: Sequence[MouthTrack]) -> MouthTrack:
        """Join consecutive chunks of one track (as streamed) into one."""
        if not tracks:
            raise OptionError("no mouth-track chunks to join")
        first = tracks[0]
        weights = None
        if all(t.viseme_weights is not None for t in tracks):
            weights = np.concatenate([t.viseme_weights for t in tracks])  # type: ignore[misc]
        return MouthTrack(
            params=np.concatenate([t.params for t in tracks]),
            fps=first.fps,
            source=first.source,
            start_frame=first.start_frame,
            viseme_weights=weights,
        )


def _tables(jaw: dict[str, float], lingual_jaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``(V, K)`` and dominance ``(V, K)`` of one style."""
    targets = np.array([VISEME_TARGETS[v] for v in VISEMES], dtype=np.float64)
    for v, value in jaw.items():
        targets[VISEMES.index(v), 0] = value
    alpha = np.array([[VISEME_DOMINANCE[v][0]] * len(MOUTH_PARAMS) for v in VISEMES])
    for v, scales in DOMINANCE_SCALE.items():
        for p, f in scales.items():
            alpha[VISEMES.index(v), MOUTH_PARAMS.index(p)] *= f
    alpha[[VISEMES.index(v) for v in LINGUAL_VISEMES], MOUTH_PARAMS.index("jaw_open")] *= (
        lingual_jaw
    )
    return targets, alpha


_STYLE_TABLES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "clear": _tables({}, LINGUAL_JAW),
    "conversational": _tables(CONVERSATIONAL_JAW, CONVERSATIONAL_LINGUAL_JAW),
}
_TAU = np.array([VISEME_DOMINANCE[v][1] for v in VISEMES])
_SIL = VISEMES.index("sil")
_PP = VISEMES.index(BILABIAL)


MAX_ANTICIPATION_S = 0.2
"""Longest lead of the mouth over the sound :class:`CoarticulationOptions` accepts."""
MAX_TIMING_SD_S = 0.1
"""Largest phone-timing uncertainty :class:`CoarticulationOptions` accepts."""
#: Standard deviation (seconds) of the phone-timing error of each source, which the
#: mouth is blended over (:attr:`CoarticulationOptions.timing_sd_s`). Chosen on audio with
#: exact timing that no lip-sync value was tuned on: 40 espeak-ng utterances (10 Harvard
#: sentences x 4 voices, 150-210 wpm, ``bench/lipsync_lopo.py --espeak``), as the blur
#: that best matched the mouth from the recognised phones to the mouth from espeak's own
#: phone events (r 0.884 -> 0.896 aligned, 0.732 -> 0.750 recognised words). espeak's
#: phones are the audio's own timing: no blur.
TIMING_SD_S: dict[str, float] = {
    "espeak": 0.0,
    "pocketsphinx-align": 0.03,
    "pocketsphinx-words": 0.04,
    "pocketsphinx-phones": 0.04,
}
#: Quadrature of the Gaussian timing blend: offsets in units of ``timing_sd_s``.
_BLEND_STEPS = np.linspace(-2.0, 2.0, 9)
_BLEND_WEIGHTS = np.exp(-0.5 * _BLEND_STEPS**2) / np.exp(-0.5 * _BLEND_STEPS**2).sum()


@dataclass(frozen=True)
class CoarticulationOptions:
    """How neighbouring visemes blend.

    Attributes:
        plateau: fraction of each segment's half-length held at full dominance.
        cutoff_s: dominance is exactly zero beyond this distance from a segment's
            plateau, which makes chunked computation identical to the whole.
        speed: scales every time constant ``tau`` down (>1 = crisper, <1 = mushier).
        bilabial_closure: force closed lips on every frame of P/B/M.
        anticipation_s: how far the mouth runs ahead of the sound, seconds: a frame
            shows the blend of its midpoint plus this (bilabial closures stay on
            their sound). Speech-production studies put the lead of visible
            articulation at 20-100 ms; ``None`` takes the style's
            (:data:`ANTICIPATION_S`: 20 ms clear, 40 ms conversational, which keeps the
            best lag within one frame on all of issue 4's real clips, whose own
            audio-video offsets differ by about two frames).
        style: ``"clear"`` (the viseme table: crisp syllables, for synthesised speech),
            ``"conversational"`` (:data:`CONVERSATIONAL_JAW`: how people move when they
            talk, for recordings), or ``"auto"``: clear for espeak phones, else
            conversational. On issue 4's self-reconstruction (rendered and measured,
            ``bench/generate.py``) the conversational style with the rest pose of
            :func:`with_rest_pose` raises the mouth-opening correlation from 0.475 (clear
            table, lips closed in pauses) to 0.603; on synthesised speech it would drop
            the share of vowels shown open from 91 % to 73 % (issue 4's text check asks
            for 80 %), hence two styles.
        timing_sd_s: how uncertain the phone times are, seconds: each frame shows the
            blend averaged over a Gaussian of this standard deviation around its time
            (the expected mouth under that timing error, instead of a crisp shape at a
            possibly wrong moment); bilabial closures stay hard. ``None`` takes the
            source's (:data:`TIMING_SD_S`: 0 for espeak, 30-40 ms for recognised speech).
    """

    plateau: float = 0.5
    cutoff_s: float = 0.35
    speed: float = 1.0
    bilabial_closure: bool = True
    anticipation_s: float | None = None
    style: Style = "auto"
    timing_sd_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.plateau <= 1.0:
            raise OptionError(f"plateau must be in [0, 1], got {self.plateau}")
        if self.cutoff_s <= 0 or self.speed <= 0:
            raise OptionError("cutoff_s and speed must be positive")
        if self.anticipation_s is not None and not (
            0.0 <= self.anticipation_s <= MAX_ANTICIPATION_S
        ):
            raise OptionError(
                f"anticipation_s must be in [0, {MAX_ANTICIPATION_S}] seconds, "
                f"got {self.anticipation_s}"
            )
        if self.timing_sd_s is not None and not 0.0 <= self.timing_sd_s <= MAX_TIMING_SD_S:
            raise OptionError(
                f"timing_sd_s must be in [0, {MAX_TIMING_SD_S}] seconds, got {self.timing_sd_s}"
            )
        if self.style not in ("auto", "clear", "conversational"):
            raise OptionError(f"style must be auto, clear or conversational, got {self.style!r}")

    def resolved(self, source: str) -> CoarticulationOptions:
        """These options with ``style``, ``anticipation_s`` and ``timing_sd_s`` fixed for
        phones of ``source``."""
        style = self.style
        if style == "auto":
            style = "clear" if source == "espeak" else "conversational"
        lead = ANTICIPATION_S[style] if self.anticipation_s is None else self.anticipation_s
        sd = self.timing_sd_s
        if sd is None:
            sd = TIMING_SD_S.get(source, TIMING_SD_S["pocketsphinx-words"])
        return replace(self, style=style, anticipation_s=lead, timing_sd_s=sd)


@dataclass(frozen=True)
class _Segments:
    """Viseme segments (diphthongs split, transparent phones dropped), sorted by start."""

    start: np.ndarray  # (P,) seconds
    end: np.ndarray
    viseme: np.ndarray  # (P,) int index into VISEMES

    @staticmethod
    def from_phones(phones: Sequence[Phone]) -> _Segments:
        rows: list[tuple[float, float, int]] = []
        for p in phones:
            visemes = phone_visemes(p.symbol, p.source)
            if not visemes or p.end <= p.start:
                continue
            if len(visemes) == 1:
                rows.append((p.start, p.end, VISEMES.index(visemes[0])))
                continue
            cut = p.start + DIPHTHONG_SPLIT * (p.end - p.start)
            rows.append((p.start, cut, VISEMES.index(visemes[0])))
            rows.append((cut, p.end, VISEMES.index(visemes[1])))
        rows.sort()
        arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return _Segments(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64))


#: Frames evaluated per block: bounds memory to (block x segments-in-reach x K).
_BLOCK = 256


def _evaluate(
    seg: _Segments, times: np.ndarray, options: CoarticulationOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Blend targets at ``times`` (n,), ascending: params (n, K) and viseme weights (n, V)."""
    targets, alphas = _STYLE_TABLES["clear" if options.style == "auto" else options.style]
    near = (seg.end + options.cutoff_s > times[0]) & (seg.start - options.cutoff_s < times[-1])
    start, end, vis = seg.start[near], seg.end[near], seg.viseme[near]
    center, half = 0.5 * (start + end), 0.5 * (end - start)
    dist = np.maximum(0.0, np.abs(times[:, None] - center[None, :]) - options.plateau * half)
    decay = np.exp(-dist * options.speed / _TAU[vis][None, :]) * (dist < options.cutoff_s)
    dom = decay[:, :, None] * alphas[vis][None, :, :]  # (n, P, K)
    num = REST_WEIGHT * targets[_SIL][None, :] + np.einsum("npk,pk->nk", dom, targets[vis])
    params = num / (REST_WEIGHT + dom.sum(axis=1))
    lo, hi = LIP_CLOSE_EDGES
    closed = np.clip((params[:, 2] - lo) / (hi - lo), 0.0, 1.0)
    params[:, 2] = closed * closed * (3.0 - 2.0 * closed)
    weights = np.zeros((len(times), len(VISEMES)))
    weights[:, _SIL] = REST_WEIGHT
    np.add.at(weights.T, vis, (decay * alphas[vis, 0][None, :]).T)
    weights /= weights.sum(axis=1, keepdims=True)
    return params, weights


def _phone_frames(start: float, end: float, fps: float) -> range:
    """Frames whose midpoint lies in [start, end), or the frame holding the centre."""
    first = math.ceil(start * fps - 0.5)
    last = math.ceil(end * fps - 0.5)  # exclusive
    if last > first:
        return range(first, last)
    k = math.floor(0.5 * (start + end) * fps)
    return range(k, k + 1)


def mouth_frames(
    phones: Sequence[Phone],
    fps: float,
    start_frame: int,
    stop_frame: int,
    options: CoarticulationOptions | None = None,
    source: str | None = None,
) -> MouthTrack:
    """Mouth parameters for frames ``[start_frame, stop_frame)`` of a phone sequence.

    Identical to the same rows of :func:`mouth_track` (dominance has a hard cutoff),
    so a streaming caller can render chunk by chunk once the phones up to
    ``stop_frame / fps + lead + 2 * sd + options.cutoff_s`` are known (``lead`` and ``sd``:
    the anticipation and timing uncertainty of ``options.resolved(source)``).
    """
    if fps <= 0:
        raise OptionError(f"fps must be positive, got {fps}")
    source = source or (phones[0].source if phones else "espeak")
    options = (options or CoarticulationOptions()).resolved(source)
    assert options.anticipation_s is not None and options.timing_sd_s is not None
    count = max(0, stop_frame - start_frame)
    params = np.empty((count, len(MOUTH_PARAMS)), np.float32)
    weights = np.empty((count, len(VISEMES)), np.float32)
    seg = _Segments.from_phones(phones)
    lead, sd = options.anticipation_s, options.timing_sd_s
    offsets = _BLEND_STEPS * sd if sd > 0 else np.zeros(1)
    shares = _BLEND_WEIGHTS if sd > 0 else np.ones(1)
    for b in range(0, count, _BLOCK):
        frames = np.arange(start_frame + b, start_frame + min(count, b + _BLOCK))
        times = (frames + 0.5) / fps + lead
        # All offsets in one pass: (offsets x frames) ascending within each offset.
        grid = (times[None, :] + offsets[:, None]).reshape(-1)
        p, w = _evaluate(seg, np.sort(grid), options)
        order = np.argsort(grid, kind="stable")
        p_all, w_all = np.empty_like(p), np.empty_like(w)
        p_all[order], w_all[order] = p, w
        n = len(times)
        params[b : b + n] = np.einsum("o,onk->nk", shares, p_all.reshape(len(offsets), n, -1))
        weights[b : b + n] = np.einsum("o,onk->nk", shares, w_all.reshape(len(offsets), n, -1))
    if options.bilabial_closure and count:
        jaw, closed, teeth = (MOUTH_PARAMS.index(n) for n in ("jaw_open", "lip_closed", "teeth"))
        lo, hi = start_frame / fps - 1.0, stop_frame / fps + 1.0
        for s, e in zip(seg.start[seg.viseme == _PP], seg.end[seg.viseme == _PP], strict=True):
            if e < lo or s > hi:
                continue
            for k in _phone_frames(float(s), float(e), fps):
                if start_frame <= k < stop_frame:
                    row = params[k - start_frame]
                    row[jaw] = min(row[jaw], VISEME_TARGETS[BILABIAL][jaw])
                    row[closed] = 1.0
                    row[teeth] = 0.0
                    weights[k - start_frame] = 0.0
                    weights[k - start_frame, _PP] = 1.0
    return MouthTrack(params, fps, source, start_frame, weights)


def mouth_track(
    phones: Sequence[Phone],
    fps: float = DEFAULT_FPS,
    duration: float | None = None,
    options: CoarticulationOptions | None = None,
    source: str | None = None,
) -> MouthTrack:
    """Per-frame mouth parameters for timed phones.

    Args:
        phones: timed phones (any source); gaps between them relax to rest.
        fps: output frame rate.
        duration: seconds to cover; defaults to the last phone's end.
        options: coarticulation settings.
        source: label for the track; defaults to the phones' source.

    Returns:
        A :class:`MouthTrack` with ``n_frames(duration, fps)`` rows.
    """
    if duration is None:
        duration = max((p.end for p in phones), default=0.0)
    return mouth_frames(phones, fps, 0, n_frames(duration, fps), options, source)


def with_rest_pose(track: MouthTrack, jaw_open: float) -> MouthTrack:
    """``track`` with its rest pose (pauses, silence) showing lips parted by ``jaw_open``.

    The viseme table rests with the lips closed; a portrait whose own lips are
    parted should return to that look when it stops talking rather than press them
    together in every pause (on issue 4's clips, two of three speakers keep their lips
    apart in pauses). Each frame moves towards the parted rest by its share of rest:
    the ``sil`` viseme weight of a phone track (0 on the hard bilabial frames, so a P,
    B or M stays shut), ``lip_closed`` of an acoustic track.
    """
    if jaw_open <= 0.0 or not len(track):
        return track
    weights = track.viseme_weights
    share = weights[:, _SIL] if weights is not None else track.lip_closed
    params = track.params.copy()
    params[:, MOUTH_PARAMS.index("jaw_open")] += share * np.float32(jaw_open)
    params[:, MOUTH_PARAMS.index("lip_closed")] *= 1.0 - share
    return replace(track, params=params)
