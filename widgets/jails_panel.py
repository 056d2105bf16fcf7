"""Jails: strategy, members, allow-list, dropped packets and bytes, and a rate sparkline each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netjail.backends.model import Counters, JailCounters, JailInfo
from netjail.widgets.format import human_bytes, human_count, human_rate
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Sparkline, Static

_MAX_MEMBERS_LISTED = 4


@dataclass(frozen=True, slots=True)
class JailView:
    info: JailInfo
    counters: JailCounters | None  # None until the counters source answered
    rate: float | None  # dropped packets per second over the last interval
    history: tuple[float, ...]
    countable: bool = True  # False: netfilter never sees this jail's traffic (seccomp)


def _totals(view: JailView) -> Counters:
    return view.counters.total if view.counters else view.info.counters


def describe(view: JailView) -> Text:
    info, total = view.info, _totals(view)
    alive = [m for m in info.members if m.alive]
    members = ", ".join(f"{m.pid} {printable(m.name, 64)}".strip() for m in alive[:_MAX_MEMBERS_LISTED])
    if len(alive) > _MAX_MEMBERS_LISTED:
        members += f" +{len(alive) - _MAX_MEMBERS_LISTED}"
    gone = len(info.members) - len(alive)
    allow = list(info.allow) + (["loopback"] if info.allow_loopback else [])
    # names come from the registry and the kernel (an adopted jail's cgroup name): escaped
    text = Text.assemble((printable(info.name), "bold red"), "  ", (printable(info.strategy), "cyan"))
    text.append(f"  {len(alive)} member{'s' if len(alive) != 1 else ''}", style="dim")
    if gone:
        text.append(f" ({gone} exited)", style="dim")
    text.append("\n")
    text.append("members ", style="dim").append(members or "none").append("\n")
    text.append("allow   ", style="dim").append(printable(", ".join(allow)) if allow else "nothing")
    text.append("\n")
    text.append("dropped ", style="dim")
    if not view.countable:
        strategy = printable(info.strategy)
        return text.append(f"not countable: {strategy} jails never reach netfilter", style="dim")
    text.append(
        f"{human_count(total.dropped_packets)} pkts", style="bold red" if total.dropped_packets else ""
    )
    text.append(f"  {human_bytes(total.dropped_bytes)}")
    text.append("  rate ", style="dim").append(human_rate(view.rate), style="bold")
    return text


def _spark(history: tuple[float, ...]) -> list[float]:
    # A leading zero pins the scale's floor, so a steady rate reads as high, not as nothing.
    return [0.0, *history]


class JailCard(Vertical):
    DEFAULT_CSS = """
    JailCard { height: auto; margin-bottom: 1; }
    JailCard > Sparkline { height: 1; margin-top: 0; }
    """

    def __init__(self, view: JailView) -> None:
        super().__init__(classes="jail-card")
        self._view = view

    def compose(self) -> ComposeResult:
        yield Static(describe(self._view), classes="jail-text")
        spark = Sparkline(_spark(self._view.history), summary_function=max)
        spark.display = self._view.countable
        yield spark

    @property
    def view(self) -> JailView:
        return self._view

    def show(self, view: JailView) -> None:
        if view == self._view:
            return
        self._view = view
        self.query_one(".jail-text", Static).update(describe(view))
        spark = self.query_one(Sparkline)
        spark.data = _spark(view.history)
        spark.display = view.countable


class JailsPanel(VerticalScroll):
    """One card per jail, keyed by name; a failing counters source shows above the cards."""

    DEFAULT_CSS = """
    JailsPanel > #jails-error { color: $error; display: none; }
    JailsPanel > #jails-empty { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cards: dict[str, JailCard] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="jails-error")
        yield Static("no jails: select a process and press b, or press n to launch one", id="jails-empty")

    def show_error(self, error: str | None) -> None:
        widget = self.query_one("#jails-error", Static)
        widget.update(Text(f"counters: {printable(error)}") if error else "")
        widget.display = bool(error)

    @property
    def views(self) -> dict[str, JailView]:
        return {name: card.view for name, card in self._cards.items()}

    def show_jails(self, views: Sequence[JailView]) -> None:
        wanted = {v.info.name: v for v in views}
        for name in list(self._cards):
            if name not in wanted:
                self._cards.pop(name).remove()
        new: list[JailCard] = []
        for name, view in wanted.items():
            if name in self._cards:
                self._cards[name].show(view)
            else:
                self._cards[name] = card = JailCard(view)
                new.append(card)
        if new:
            self.mount_all(new)
        self.query_one("#jails-empty", Static).display = not wanted
        self.border_subtitle = f"{len(wanted)} jail{'s' if len(wanted) != 1 else ''}"
