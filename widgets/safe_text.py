"""Text that came from a process or a user, made safe to put on a terminal.

A process chooses its own name and command line, a user their paths and cgroup names: any of
them may hold terminal escape sequences (OSC 52 writes the clipboard, CSI moves the cursor),
bidi overrides that reorder what the operator reads, or bytes that are not UTF-8. `printable`
turns every such character into a visible escape, so the operator sees that something is off
instead of the terminal acting on it. It is pure (no Textual import): the CLI uses it too.

Markup is a separate matter: the TUI renders these strings as `rich.text.Text` / plain
notifications, never as markup, so `[/x]` in a name is just four characters.
"""

from __future__ import annotations

from collections.abc import Iterable

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
ELLIPSIS = "…"


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, decoded with surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, limit: int | None = None) -> str:
    """`text` with every character Python's repr() would escape shown as an escape (`\\x1b`,
    `\\u202e`, `\\xff` for a byte that was not UTF-8): C0/C1 controls, DEL, format characters
    (bidi overrides and isolates, zero-width characters), line separators, surrogates, and
    unassigned or private code points. `limit`: at most that many characters, the last one `…`.
    """
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]  # escaping only lengthens: cut first, so a huge cmdline costs little
    if not text.isprintable():  # C-speed check; the common case stops here
        text = "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
    if limit is not None and (cut or len(text) > limit):
        text = text[: max(limit - 1, 0)] + ELLIPSIS
    return text


def printable_argv(argv: Iterable[str], limit: int | None = None) -> str:
    """A command line for display: arguments joined by spaces, each escaped."""
    return printable(" ".join(argv), limit)
