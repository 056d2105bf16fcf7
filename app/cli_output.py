"""Output helpers shared by the CLI commands: JSON, aligned tables, notes on stderr.

Human output shows process- and user-chosen text through `printable` (no terminal escapes
reach the screen); JSON keeps every value as it is, except bytes that were not UTF-8, which
no strict JSON parser accepts as lone surrogates: they become U+FFFD there.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterable, Sequence

from netjail.widgets.safe_text import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from typing import Any

# Set by `main` from `--pretty`/`-p`: JSON is compact by default, like `ip -j` (`ip -j -p`).
PRETTY = False


def _valid_unicode(obj: Any) -> Any:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:  # lone surrogates: from surrogateescape, a byte that was not UTF-8
            return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in obj)
    if isinstance(obj, list | tuple):
        return [_valid_unicode(v) for v in obj]
    if isinstance(obj, dict):
        return {
            _valid_unicode(k if isinstance(k, str) else _key(k)): _valid_unicode(v) for k, v in obj.items()
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: _valid_unicode(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("json", True)  # a result's notes go to stderr, not in the document
        }
    return obj


def _key(k: Any) -> str:
    """A dict key as orjson's OPT_NON_STR_KEYS writes it."""
    return json.dumps(k) if isinstance(k, bool) or k is None else str(k)


def dumps(data: Any, *, pretty: bool | None = None, bulk: bool = False) -> bytes:
    """One JSON document, newline-terminated, ASCII (\\u escapes). Lone surrogates (a process
    name that was not UTF-8) become U+FFFD, which every strict JSON parser accepts.

    `bulk` (ps: thousands of sockets): orjson, which serialises the engine's frozen dataclasses
    natively: ~15x faster than building dicts for json's C encoder (measured at 5,000 sockets:
    2.7 ms against 27-44 ms; json.dump with indent runs the pure-Python encoder, 75 ms).
    Otherwise (a few jails, counters, one result) json's C encoder on plain values: importing
    orjson (it loads uuid, platform and datetime: ~3.5 ms) costs more than it saves there.
    Both write the same bytes."""
    indent = PRETTY if pretty is None else pretty
    if not bulk:
        text = json.dumps(
            _valid_unicode(data), indent=2 if indent else None, separators=None if indent else (",", ":")
        )
        return text.encode() + b"\n"
    import orjson  # only for the large documents

    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    if indent:
        options |= orjson.OPT_INDENT_2
    try:
        out = orjson.dumps(data, option=options)
    except orjson.JSONEncodeError:  # orjson refuses lone surrogates
        out = orjson.dumps(_valid_unicode(data), option=options)
    # orjson writes UTF-8 as is, C1 controls and bidi overrides included: `ps --json` on a
    # terminal would show a process's chosen sequences. ASCII with \u escapes, as json.dumps
    # does by default (non-ASCII is rare: the scan is all it costs).
    return _NON_ASCII.sub(_escape_utf8, out)


_NON_ASCII = re.compile(rb"[\x80-\xff]+")


def _escape_utf8(m: re.Match[bytes]) -> bytes:
    return json.dumps(m.group().decode())[1:-1].encode()


def json_text(data: Any, *, pretty: bool = False, bulk: bool = False) -> str:
    return dumps(data, pretty=pretty, bulk=bulk).decode()


def print_json(data: Any, *, stream: bool = False, bulk: bool = False) -> None:
    """`stream`: one line per document, flushed (`--watch`), whatever --pretty says; `bulk`:
    a large document (see `dumps`)."""
    out = dumps(data, pretty=False if stream else None, bulk=bulk)
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream (redirect_stdout to a StringIO)
        sys.stdout.write(out.decode())
    else:
        sys.stdout.flush()  # text written before goes first
        binary.write(out)
    if stream:
        (binary or sys.stdout).flush()


def print_notes(notes: Iterable[str]) -> None:
    for note in notes:
        sys.stderr.write(f"netjail: note: {printable(note)}\n")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [[printable(str(c)) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
