"""Dataset cards: what each of the field's corpora is, how to get it, and how it lies on disk.

One TOML file per corpus ships in ``avatarlab/datasets/cards/``. Figures come from
the corpus papers and homepages; where a figure could not be confirmed it is
written with "about" or left empty, and ``notes`` says so.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

from avatarlab.errors import OptionError

#: Values of :attr:`DatasetCard.kind`.
KINDS = ("talking-face", "speech", "avatar")


@dataclass(frozen=True)
class DatasetCard:
    """Facts about one corpus.

    Text fields keep the published wording ("about 352 hours", "1,251 speakers");
    an empty string means the figure is unknown or not applicable.

    Attributes:
        name: display name, e.g. ``"VoxCeleb2"``.
        kind: ``"talking-face"`` (audio-visual speech), ``"speech"`` (audio only)
            or ``"avatar"`` (3D / multi-view body capture).
        paper: the reference to cite.
        year: year of the paper that introduced the corpus.
        language: spoken language(s); empty for corpora without speech.
        environment: ``"lab"`` (controlled capture) or ``"wild"`` (broadcast, web).
        setting: one line on where the material comes from.
        resolution: frame size / format of the released media.
        subjects: number of speakers or subjects.
        duration: total duration (or frames / sequences for capture corpora).
        sentences: number of utterances or sentences.
        homepage: official page.
        licence: licence or terms of use, in short.
        obtain: how to get a copy.
        reader: name of the avatarlab reader for a local copy (``""``: none).
        layout: the on-disk tree that reader expects, and how ids are formed.
        notes: caveats, including figures that could not be confirmed.
    """

    name: str
    kind: str
    paper: str
    year: int
    language: str
    environment: str
    setting: str
    resolution: str
    subjects: str
    duration: str
    sentences: str
    homepage: str
    licence: str
    obtain: str
    reader: str
    layout: str
    notes: str

    @property
    def key(self) -> str:
        """Lower-case lookup key: ``"VoxCeleb2"`` -> ``"voxceleb2"``."""
        return card_key(self.name)


def card_key(name: str) -> str:
    """Normalise a corpus name for lookup: case, dots, spaces and underscores are ignored."""
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "-").replace("-", "")


@cache
def load_cards() -> tuple[DatasetCard, ...]:
    """All cards shipped with avatarlab, sorted by year then name."""
    names = {f.name for f in fields(DatasetCard)}
    cards: list[DatasetCard] = []
    folder = resources.files("avatarlab.datasets") / "cards"
    for entry in folder.iterdir():
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        missing = names - data.keys()
        extra = data.keys() - names
        if missing or extra:
            raise ValueError(
                f"card {entry.name}: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        data["layout"] = data["layout"].strip("\n")
        cards.append(DatasetCard(**data))
    return tuple(sorted(cards, key=lambda c: (c.year, c.name.lower())))


def list_cards(kind: str | None = None) -> list[DatasetCard]:
    """Cards of one ``kind`` (see :data:`KINDS`), or all of them."""
    if kind is not None and kind not in KINDS:
        raise OptionError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    return [c for c in load_cards() if kind is None or c.kind == kind]


def get_card(name: str) -> DatasetCard:
    """The card for ``name`` (case-insensitive; "vox-celeb2", "VoxCeleb2" both work).

    Raises:
        OptionError: no card of that name; the message lists the known ones.
    """
    key = card_key(name)
    for card in load_cards():
        if card.key == key:
            return card
    known = ", ".join(c.name for c in load_cards())
    raise OptionError(f"no dataset card named {name!r}; known datasets: {known}")
