"""Fitting a line of parts into a width: long forms first, then short ones, then dropping the
least important, so a narrow terminal reads a shorter sentence instead of a word cut in half."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text


@dataclass(frozen=True, slots=True)
class Part:
    text: Text
    short: Text | None = None  # what it becomes when space runs out (None: kept as is)
    priority: int = 0  # lower is more important: the highest numbers go first


def fit_parts(parts: Sequence[Part], width: int, sep: str = " · ") -> Text:
    """The parts joined by `sep` in their order, within `width` cells where at all possible:
    the least important parts shorten first, then drop out; the most important one stays."""
    chosen: list[Text | None] = [p.text for p in parts]
    by_rank = sorted(range(len(parts)), key=lambda i: -parts[i].priority)

    def length() -> int:
        shown = [t for t in chosen if t is not None]
        return sum(t.cell_len for t in shown) + len(sep) * max(len(shown) - 1, 0)

    for i in by_rank:
        if length() <= width:
            break
        short = parts[i].short
        if short is not None:
            chosen[i] = short
    for i in by_rank[:-1]:
        if length() <= width:
            break
        chosen[i] = None
    return Text(sep).join(t for t in chosen if t is not None)
