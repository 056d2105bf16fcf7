"""One line for a notification or a panel, whatever a worker raised."""

from __future__ import annotations

from netjail.backends.errors import NetjailError


def one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) if isinstance(exc, NetjailError) else f"{type(exc).__name__}: {exc}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 200 else first[:199] + "…"
