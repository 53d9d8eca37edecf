"""The shared Registry: lazy entries, and a broken plug-in that fails in one line."""

from __future__ import annotations

import pytest

from avatarlab.engines import ENGINES, get_engine, list_engines
from avatarlab.errors import OptionError
from avatarlab.registry import Registry


def test_lazy_entries_import_on_first_lookup() -> None:
    reg: Registry[object] = Registry("thing")
    reg.lazy("path", "pathlib:Path")
    assert reg.names() == ["path"] and "path" in reg
    from pathlib import Path

    assert reg.get("path") is Path
    with pytest.raises(OptionError, match="unknown thing 'nope': use one of path"):
        reg.get("nope")


def test_a_broken_plugin_engine_is_one_line_and_spares_the_others() -> None:
    ENGINES.lazy("_broken", "avatarlab_no_such_plugin.engine:Engine")
    try:
        with pytest.warns(RuntimeWarning, match="'_broken' cannot be loaded"):
            speech = list_engines("speech")
        assert "_broken" not in speech and {"warp", "wav2lip"} <= set(speech)
        assert "_broken" in list_engines()  # listed by name; choosing it says why it fails
        with pytest.raises(OptionError, match="cannot be loaded from.*ModuleNotFoundError"):
            get_engine("_broken")
    finally:
        ENGINES.unregister("_broken")
