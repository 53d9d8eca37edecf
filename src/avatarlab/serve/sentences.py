"""Text cut into the pieces a live avatar speaks one after another.

:class:`SentenceCutter` works on text as it streams in (a language model's reply), so
the first sentence is spoken while the rest is still being written;
:func:`split_sentences` cuts a whole text by the same rules.
"""

from __future__ import annotations

import re

from avatarlab.errors import OptionError

MAX_SENTENCE_CHARS = 200
"""Longest piece spoken at once; a longer sentence is cut at a comma or a space."""

_TERMINATORS = ".!?;:\u2026"
_CLOSERS = "\"'\u201d\u2019\u00bb)]}*_`"
_CJK_TERMINATORS = "\u3002\uff01\uff1f"
_CJK_CLOSERS = "\u300d\u300f\uff09\u201d\u2019\"')]"
_BOUNDARY = re.compile(
    rf"(?P<end>[{re.escape(_TERMINATORS)}]+[{re.escape(_CLOSERS)}]*)(?=\s)"
    rf"|(?P<cjk>[{_CJK_TERMINATORS}]+[{re.escape(_CJK_CLOSERS)}]*)(?=[^{re.escape(_CJK_CLOSERS)}])"
    r"|(?P<newline>\n)"
)
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "gen", "gov", "sen", "rep"}
    | {"rev", "hon", "capt", "lt", "col", "sgt", "cpl", "vs", "cf", "ca", "approx", "al", "fig"}
)
_WORD_BEFORE = re.compile(r"[^\s\"'\u201c\u2018(\[{]*$")
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]|[A-Z]")


def _ends_sentence(piece: str, terminator: str) -> bool:
    """Whether ``terminator`` after ``piece`` ends a sentence, not an abbreviation
    (``Dr.``, ``e.g.``, ``U.S.``, an initial), an ellipsis, or a list number."""
    if not any(ch.isalpha() for ch in piece):
        return False  # "1." of a numbered list, "..."
    marks = terminator.rstrip(_CLOSERS)
    if set(marks) <= {".", "\u2026"} and (len(marks) > 1 or marks == "\u2026"):
        return False
    if marks == ".":
        word = _WORD_BEFORE.search(piece)
        token = word.group() if word else ""
        if token.lower() in _ABBREVIATIONS or _INITIALISM.fullmatch(token):
            return False
    return True


class SentenceCutter:
    """Cuts text arriving in pieces into sentences, each as soon as it is complete.

    :meth:`feed` returns the sentences that the text so far completes: a sentence
    ends at ``. ! ? ; : …`` (with any closing quote or bracket) once the space or
    newline after it has arrived, at a CJK full stop, and at every newline. Not ends:
    abbreviations (``Dr. Smith``, ``e.g.``, ``U.S.``), initials, ellipses, decimals
    (``3.14``), list numbers. A sentence longer than ``max_chars`` is cut at its last
    comma in the second half, else its last space. Pieces are stripped; those without a
    letter or digit are dropped. Feeding a text whole or in any pieces gives the same
    sentences.
    """

    def __init__(self, max_chars: int = MAX_SENTENCE_CHARS) -> None:
        if max_chars < 2:
            raise OptionError(f"max_chars must be at least 2, got {max_chars}")
        self.max_chars = max_chars
        self._buf = ""

    def feed(self, delta: str) -> list[str]:
        """Add ``delta``; the sentences it completes, in order."""
        self._buf += delta
        out: list[str] = []
        while True:
            self._buf = self._buf.lstrip()
            cut = self._next_cut()
            if cut is None:
                break
            end, rest = cut
            piece = self._buf[:end].strip()
            self._buf = self._buf[rest:]
            if any(ch.isalnum() for ch in piece):
                out.append(piece)
        return out

    def flush(self) -> list[str]:
        """The text still held, as sentences (the reply has ended)."""
        out = self.feed("\n")
        self._buf = ""
        return out

    def _next_cut(self) -> tuple[int, int] | None:
        """``(end of the next sentence, start of the text after it)``, if one is complete."""
        buf = self._buf
        for m in _BOUNDARY.finditer(buf):
            if m.end() > self.max_chars:
                break
            if m.lastgroup == "newline":
                return m.start(), m.end()
            if m.lastgroup == "cjk" or _ends_sentence(buf[: m.start()], m.group()):
                return m.end(), m.end()
        if len(buf) <= self.max_chars:
            return None
        window = buf[: self.max_chars]
        comma = max(window.rfind(", "), window.rfind(",\n"))
        if comma >= self.max_chars // 2:
            return comma + 1, comma + 1
        space = max(window.rfind(" "), window.rfind("\t"))
        return (space, space) if space > 0 else (self.max_chars, self.max_chars)


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split a whole text into pieces spoken one after another, so speech starts after
    the first (the rules of :class:`SentenceCutter`)."""
    cutter = SentenceCutter(max_chars)
    return cutter.feed(text) + cutter.flush()
