"""`printable`: what a process or user chose is shown with its control characters escaped."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from netjail.widgets.safe_text import printable, printable_argv

DANGEROUS = {
    "\x1b]52;c;SGVsbG8=\x07": "\\x1b]52;c;SGVsbG8=\\x07",  # OSC 52: writes the clipboard
    "\x1b]0;PWNED\x07\x1b[1A": "\\x1b]0;PWNED\\x07\\x1b[1A",  # title, cursor up
    "\x9b1A": "\\x9b1A",  # C1 CSI: one byte does what ESC [ does
    "a\x7fb": "a\\x7fb",
    "evil\u202etxt.exe": "evil\\u202etxt.exe",  # right-to-left override
    "\u2066x\u2069": "\\u2066x\\u2069",  # bidi isolates
    "ss\u200bhd": "ss\\u200bhd",  # zero width space
    "\ufeffbom": "\\ufeffbom",
    "line\u2028break": "line\\u2028break",
    "tab\tnl\ncr\r": "tab\\tnl\\ncr\\r",
    "bad\udcffname": "bad\\xffname",  # a byte that was not UTF-8 (surrogateescape)
    "lone\ud800": "lone\\ud800",
    "tag\U000e0041": "tag\\U000e0041",  # invisible tag characters
}


def test_dangerous_characters_become_visible_escapes() -> None:
    for raw, shown in DANGEROUS.items():
        assert printable(raw) == shown, raw


def test_ordinary_text_is_unchanged_markup_brackets_included() -> None:
    for text in ("sshd: alice [priv]", "[/x]", "[black on black]", "é ü 日本語 🙂", "a b", ""):
        assert printable(text) == text
        assert printable(text) is text  # the fast path: no copy for the common case


def test_limit_cuts_with_an_ellipsis_and_counts_the_escapes() -> None:
    assert printable("abcdef", 4) == "abc…"
    assert printable("abcd", 4) == "abcd"
    assert printable("\x1b" * 10, 6) == "\\x1b\\…"
    assert len(printable("x" * 3_000_000, 100)) == 100


def test_argv_is_joined_and_escaped() -> None:
    assert printable_argv(["echo", "\x1b[2J", "[b]x"]) == "echo \\x1b[2J [b]x"


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=60), st.none() | st.integers(1, 40))
def test_any_text_comes_out_printable_and_bounded(text: str, limit: int | None) -> None:
    shown = printable(text, limit)
    assert shown.isprintable()
    assert not any(_unsafe(ch) for ch in shown)
    if limit is not None:
        assert len(shown) <= limit
    if text.isprintable() and (limit is None or len(text) <= limit):
        assert shown == text
