"""The ``--transcript`` hint for recognised speech is logged once per process."""

from __future__ import annotations

import importlib
import logging

import pytest

speak_task = importlib.import_module("avatarlab.tasks.speak")


def test_transcript_hint_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    speak_task._transcript_hint.cache_clear()
    with caplog.at_level(logging.WARNING, logger="avatarlab.tasks"):
        for _ in range(3):
            speak_task._transcript_hint()
    hints = [r for r in caplog.records if "--transcript" in r.getMessage()]
    assert len(hints) == 1
