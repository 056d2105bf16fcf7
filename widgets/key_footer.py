"""The footer's keys by priority: as many as fit the width, whole, the essential ones first.

Textual's Footer lays every key out in binding order and lets the terminal's edge cut the rest,
mid-word at 80 columns. This one orders the keys by PRIORITY (what an operator must find: block,
unblock, launch, help, quit) and leaves out, whole, those that no longer fit.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Actions, most needed first; keys of actions not named here come after, in binding order.
PRIORITY = (
    "block",
    "unblock",
    "launch",
    "help",
    "quit",
    "filter",
    "cycle_sort",
    "details",
    "toggle_panels",
    "attempts",
    "toggle_all",
    "toggle_tree",
    "relaunch",
    "release_all",
)


def key_width(key: FooterKey, compact: bool) -> int:
    """Cells one key takes in the footer, its margin included (Footer's DEFAULT_CSS: compact
    "key label" plus margin-right 1; otherwise " key " and "label ")."""
    text = cell_len(key.key_display) + cell_len(key.description)
    if not key.description:
        return text + (1 if compact else 2)
    return text + 2 if compact else text + 3


def by_priority(keys: Iterable[FooterKey]) -> list[FooterKey]:
    order = {action: i for i, action in enumerate(PRIORITY)}
    return sorted(keys, key=lambda k: order.get(k.action, len(PRIORITY)))  # stable: ties keep order


def fitting(keys: list[FooterKey], width: int, compact: bool) -> list[FooterKey]:
    """The longest run of keys, in order, whose widths fit in `width` cells."""
    kept: list[FooterKey] = []
    used = 0
    for key in keys:
        used += key_width(key, compact)
        if used > width:
            break
        kept.append(key)
    return kept


class KeyFooter(Footer):
    def compose(self) -> ComposeResult:
        produced = list(super().compose())
        keys = [w for w in produced if isinstance(w, FooterKey)]
        others: list[Widget] = [w for w in produced if not isinstance(w, FooterKey)]
        width = self.screen.size.width if self.is_attached else self.app.size.width
        yield from fitting(by_priority(keys), width, self.compact)
        yield from others  # binding groups and labels: netjail has none

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != getattr(self, "_laid_out_for", None):
            self._laid_out_for = event.size.width
            self.call_after_refresh(self.recompose)
