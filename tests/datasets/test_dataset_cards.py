"""Dataset cards: every corpus of the issue is present, complete and consistent; CLI views."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.datasets.cards import KINDS, get_card, list_cards, load_cards
from avatarlab.datasets.readers import READERS
from avatarlab.errors import OptionError

EXPECTED = {
    "VoxCeleb1",
    "VoxCeleb2",
    "HDTF",
    "LSP",
    "CMLR",
    "MAVD",
    "CN-Celeb",
    "CN-Celeb-AV",
    "CN-CVS",
    "LRS2",
    "LRS3",
    "THuman2.0",
    "HuMMan",
    "AvatarReX",
}


def test_every_corpus_has_one_card() -> None:
    names = [c.name for c in load_cards()]
    assert sorted(names) == sorted(EXPECTED)
    assert len(set(c.key for c in load_cards())) == len(names)


@pytest.mark.parametrize("card", load_cards(), ids=lambda c: c.name)
def test_card_fields_are_consistent(card) -> None:
    assert card.kind in KINDS
    assert card.environment in ("lab", "wild")
    assert 2010 <= card.year <= 2025
    assert card.homepage.startswith(("http://", "https://"))
    for text in (card.paper, card.licence, card.obtain, card.layout, card.setting, card.subjects):
        assert text.strip(), f"{card.name}: a required text field is empty"
    if card.kind == "talking-face":
        assert card.language and card.reader in READERS, card.name
        assert "speaker" in card.layout, "talking-face layouts say how speaker ids are formed"
    else:
        assert card.reader == "", "only talking-face corpora have readers"


def test_known_figures() -> None:
    """Spot-check figures against the corpus papers / homepages."""
    vox2 = get_card("VoxCeleb2")
    assert "2,442 hours" in vox2.duration and "6,112" in vox2.subjects
    assert "1,128,246" in vox2.sentences
    assert "1,251" in get_card("voxceleb1").subjects
    assert "102,072" in get_card("CMLR").sentences and "11" in get_card("cmlr").subjects
    assert "12,484" in get_card("MAVD").sentences and "64" in get_card("mavd").subjects
    assert "2,557" in get_card("CN-CVS").subjects
    assert "1,136" in get_card("CN-Celeb-AV").subjects
    assert "1500x2048" in get_card("AvatarReX").resolution
    assert re.search(r"\b2017\b", get_card("LRS2").paper)


def test_lookup_is_forgiving_and_errors_list_names() -> None:
    assert get_card("vox-celeb2").name == "VoxCeleb2"
    assert get_card("cn_cvs").name == "CN-CVS"
    with pytest.raises(OptionError, match="known datasets: .*VoxCeleb2"):
        get_card("no-such-corpus")
    assert {c.kind for c in list_cards("avatar")} == {"avatar"}
    with pytest.raises(OptionError):
        list_cards("video")


def test_cli_list_and_show() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["datasets", "list"])
    assert listed.exit_code == 0, listed.output
    for name in ("VoxCeleb2", "CN-CVS", "AvatarReX"):
        assert name in listed.output
    shown = runner.invoke(app, ["datasets", "show", "lrs3"])
    assert shown.exit_code == 0, shown.output
    assert "trainval/YOUTUBE_ID/NNNNN.mp4" in shown.output
    assert "BY-NC-ND" in shown.output
