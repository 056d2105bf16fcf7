"""Output helpers shared by the CLI commands: JSON, aligned tables, notes on stderr.

Human output shows process- and user-chosen text through `printable` (no terminal escapes
reach the screen); JSON keeps every value as it is, except bytes that were not UTF-8, which
no strict JSON parser accepts as lone surrogates: they become U+FFFD there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from netjail.backends.model import to_jsonable
from netjail.widgets.safe_text import printable


def _valid_unicode(obj: Any) -> Any:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:  # lone surrogates: from surrogateescape, a byte that was not UTF-8
            return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in obj)
    if isinstance(obj, list):
        return [_valid_unicode(v) for v in obj]
    if isinstance(obj, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in obj.items()}
    return obj


def json_text(data: Any, indent: int | None = 2) -> str:
    return json.dumps(_valid_unicode(to_jsonable(data)), indent=indent)


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


def print_notes(notes: Iterable[str]) -> None:
    for note in notes:
        sys.stderr.write(f"netjail: note: {printable(note)}\n")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [[printable(str(c)) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
