"""Text a hostile local user gives its processes (names, command lines) to attack the operator's
terminal or dashboard: shared by the CLI, TUI and fuzz tests."""

from __future__ import annotations

MARKUP_NAME = "[/x]"  # a closing tag with no opening one: Textual markup raised MarkupError
OSC52_NAME = "\x1b]52;c;SGVsbG8=\x07"  # OSC 52: the terminal writes "Hello" to the clipboard
TITLE_AND_CURSOR = "\x1b]0;PWNED\x07\x1b[1A"  # sets the window title, moves the cursor up
HIDE_REST = "[black on black]"  # as markup: everything after it invisible
NOT_UTF8_NAME = "bad\udcffname"  # the byte 0xff (surrogateescape): not UTF-8
NOT_UTF8_ARG = "arg\udcfe"


def assert_terminal_safe(data: bytes | str, where: str = "output") -> None:
    """UTF-8 with no control character but newlines: nothing a terminal acts on."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data  # strict: raw 0xff fails
    bad = sorted({ch for ch in text if ch != "\n" and not ch.isprintable()})
    assert not bad, f"{where} carries {bad!r}: {text!r}"
