"""`w`: what the jails dropped, full screen: every destination in the attempts log with its DNS
name, filter and sort (docs/attempts.md). Fed by the counters poll; it never reads the log
itself, so the view costs no more than the panel."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from netjail.backends.attempts.store import AttemptRow
from netjail.widgets.format import NEW_ATTEMPT_SECONDS, attempt_target, clock, human_count
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

SORTS = ("count", "last", "remote")
COLUMNS = ("JAIL", "DIR", "PROTO", "REMOTE", "KIND", "NAME", "COUNT", "BYTES", "FIRST", "LAST")


def matches(row: AttemptRow, text: str) -> bool:
    """The filter: a jail, address, port, protocol, kind or name containing `text`."""
    if not text:
        return True
    fields = (row.jail, row.remote, str(row.port), row.proto, row.kind, row.name or "")
    return any(text.lower() in f.lower() for f in fields)


def ordered(rows: Sequence[AttemptRow], sort: str) -> list[AttemptRow]:
    if sort == "last":
        return sorted(rows, key=lambda r: -r.last)
    if sort == "remote":
        return sorted(rows, key=lambda r: (r.remote, r.port, r.jail))
    return sorted(rows, key=lambda r: (-r.count, -r.last))


class AttemptsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,w,q", "close", "Back"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("slash", "filter", "Filter"),
    ]

    DEFAULT_CSS = """
    AttemptsScreen #attempts-filter { dock: top; height: 3; }
    AttemptsScreen #attempts-status { dock: bottom; height: 1; color: $text-muted; }
    """

    def __init__(self, rows: Sequence[AttemptRow], jail: str | None = None) -> None:
        super().__init__()
        self.rows: list[AttemptRow] = list(rows)
        self.sort = "count"
        self.filter_text = jail or ""

    def compose(self) -> ComposeResult:
        yield Input(
            self.filter_text, placeholder="/ filter: jail, address, port, name…", id="attempts-filter"
        )
        table: DataTable[Text] = DataTable(id="attempts-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="attempts-status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label.lower())
        self.render_rows()
        table.focus()

    def show(self, rows: Sequence[AttemptRow]) -> None:
        """New rows from the counters poll."""
        if list(rows) != self.rows:
            self.rows = list(rows)
            self.render_rows()

    def shown(self) -> list[AttemptRow]:
        return ordered([r for r in self.rows if matches(r, self.filter_text)], self.sort)

    def render_rows(self) -> None:
        table = self.query_one(DataTable)
        now = time.time()
        table.clear()
        rows = self.shown()
        for r in rows:
            new = now - r.first <= NEW_ATTEMPT_SECONDS
            style = "bold yellow" if new else ""
            cells = (
                printable(r.jail),
                r.direction,
                r.proto,
                printable(attempt_target(r.remote, r.port, r.proto)),
                r.kind,
                printable(r.name or "", 60),
                human_count(r.count),
                human_count(r.bytes),
                clock(r.first),
                clock(r.last) + (" new" if new else ""),
            )
            table.add_row(*(Text(c, style=style) for c in cells))
        status = (
            f"{len(rows)} of {len(self.rows)} destinations · sort {self.sort} · s sort · / filter · esc back"
        )
        self.query_one("#attempts-status", Static).update(Text(status))

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.render_rows()

    def action_filter(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Changed, "#attempts-filter")
    def _filtered(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.render_rows()

    @on(Input.Submitted, "#attempts-filter")
    def _submitted(self) -> None:
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)
