"""The process table: renders prepared rows, keeps the cursor on the same process across
refreshes, and posts intents (block, unblock, details) for the screen to act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple

from netjail.backends.model import Process
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey


class Plain(NamedTuple):
    """A cell shown exactly as written. DataTable reads a str cell as markup (a process named
    `[/x]` raised MarkupError) and emoji codes; a Text is safe but costs ~1 µs for every row of
    every refresh. For anything else DataTable builds a plain Text from str(), and only for the
    rows it draws."""

    text: str

    def __str__(self) -> str:
        return self.text


Cell = str | Text | Plain  # str: only text netjail wrote itself (digits, port lists)

# (key, label, width, right-aligned): fixed widths, so refreshing 2000 rows never re-measures text.
# 124 cells with padding: the table fits a 128-column terminal with its border and scrollbar.
COLUMNS: tuple[tuple[str, str, int, bool], ...] = (
    ("pid", "PID", 7, False),
    ("user", "USER", 8, False),
    ("name", "NAME", 18, False),  # room for a name under a few levels of tree
    ("sockets", "SOCK", 5, True),
    ("remote", "REMOTE", 13, False),
    ("listen", "LISTEN", 8, False),
    ("jail", "JAIL", 11, False),
    ("dropped", "DROPPED", 8, True),
    ("unit", "UNIT", 10, False),  # its systemd unit: a block never takes it out of it
    ("netns", "NETNS", 16, False),  # blank in netjail's own namespace
)
COLUMN_KEYS = tuple(c[0] for c in COLUMNS)
_FULL_REBUILD_REMOVALS = 64  # DataTable.remove_row is O(rows): past this a rebuild is cheaper


@dataclass(frozen=True, slots=True)
class ProcessRow:
    key: str  # "pid:start_time": a reused PID is another row
    process: Process
    cells: tuple[Cell, ...]


def row_key(process: Process) -> str:
    return f"{process.pid}:{process.start_time}"


class ProcessTable(DataTable[Cell]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "block", "Block"),
        Binding("u", "unblock", "Unblock"),
        Binding("R", "relaunch", "Relaunch jailed"),
        Binding("enter", "details", "Details"),
    ]

    class _ProcessIntent(Message):
        def __init__(self, process: Process) -> None:
            super().__init__()
            self.process = process

    class BlockRequested(_ProcessIntent):
        """The user wants the selected process jailed."""

    class UnblockRequested(_ProcessIntent):
        """The user wants the selected process released."""

    class RelaunchRequested(_ProcessIntent):
        """The user wants the selected process terminated and started again, jailed."""

    class DetailsRequested(_ProcessIntent):
        """The user wants the full details of the selected process."""

    class Selected(Message):
        """The process under the cursor changed (None: the table is empty)."""

        def __init__(self, process: Process | None) -> None:
            super().__init__()
            self.process = process

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cursor_foreground_priority="css")
        self._rows: dict[str, ProcessRow] = {}
        self._order: list[str] = []
        self._selected_key: str | None = None
        self._indicator: tuple[str, bool] | None = None

    def on_mount(self) -> None:
        for key, label, width, right in COLUMNS:
            self.add_column(Text(label, justify="right" if right else "left"), width=width, key=key)

    # ---- rendering ---------------------------------------------------------------------------

    def set_sort_indicator(self, column: str, descending: bool) -> None:
        if self._indicator == (column, descending):
            return
        self._indicator = (column, descending)
        for key, label, _, right in COLUMNS:
            text = f"{label}{(' ▼' if descending else ' ▲') if key == column else ''}"
            self.columns[ColumnKey(key)].label = Text(text, justify="right" if right else "left")
        self._clear_caches()
        self.refresh()

    def show_rows(self, rows: Sequence[ProcessRow]) -> None:
        """Make the table show exactly `rows`, touching only what changed, and keep the cursor
        on the same process (or, when it left, on the row that took its place)."""
        new_order = [r.key for r in rows]
        new_rows = {r.key: r for r in rows}
        if new_order == self._order:
            self._update_cells(rows)
        else:
            old_key, old_index = self._selected_key, self.cursor_row
            gone = [k for k in self._order if k not in new_rows]
            if not self._order or len(gone) > _FULL_REBUILD_REMOVALS:
                self._rebuild(rows)
            else:
                self._patch(rows, gone, new_order)
            self._order = new_order
            if rows:
                position = {k: i for i, k in enumerate(new_order)}
                target = position.get(old_key or "", min(old_index, len(rows) - 1))
                if target != self.cursor_row:
                    self.move_cursor(row=target, animate=False)
        self._rows = new_rows
        self._announce_selection()

    def _patch(self, rows: Sequence[ProcessRow], gone: list[str], new_order: list[str]) -> None:
        """Remove exited rows, append new ones, update cells, then reorder in place: far cheaper
        than re-adding every row when a sort key changed or a few processes came and went."""
        for key in gone:
            self.remove_row(key)
        for row in rows:
            if row.key not in self._rows:
                self.add_row(*row.cells, key=row.key)
        self._update_cells(rows)
        left = set(gone)
        current = [k for k in self._order if k not in left] + [k for k in new_order if k not in self._rows]
        if current != new_order:
            position = {key.split(":", 1)[0]: i for i, key in enumerate(new_order)}  # PIDs are unique
            self.sort("pid", key=lambda cell: position[cell.plain if isinstance(cell, Text) else str(cell)])

    def set_column(self, column: str, cells: Mapping[str, Cell]) -> None:
        """New values for one column of some rows (row key -> cell), order unchanged."""
        index = COLUMN_KEYS.index(column)
        for key, cell in cells.items():
            row = self._rows.get(key)
            if row is None or row.cells[index] == cell:
                continue
            self.update_cell(key, column, cell)
            self._rows[key] = replace(row, cells=(*row.cells[:index], cell, *row.cells[index + 1 :]))

    def _update_cells(self, rows: Sequence[ProcessRow]) -> None:
        for row in rows:
            old = self._rows.get(row.key)
            if old is None or old.cells == row.cells:
                continue
            for column, (before, after) in zip(
                COLUMN_KEYS, zip(old.cells, row.cells, strict=True), strict=True
            ):
                if before != after:
                    self.update_cell(row.key, column, after)

    def _rebuild(self, rows: Sequence[ProcessRow]) -> None:
        scroll_y = self.scroll_y
        self.clear()
        for row in rows:
            self.add_row(*row.cells, key=row.key)
        self.scroll_y = scroll_y

    # ---- selection ---------------------------------------------------------------------------

    @property
    def shown_keys(self) -> list[str]:
        return list(self._order)

    @property
    def jailed_rows(self) -> list[ProcessRow]:
        return [r for r in self._rows.values() if r.process.jail]

    def row_of(self, pid: int) -> ProcessRow | None:
        return next((r for r in self._rows.values() if r.process.pid == pid), None)

    def cell_text(self, pid: int, column: str) -> str | None:
        """What the table shows for `pid` in `column` (None: no such row)."""
        row = self.row_of(pid)
        if row is None:
            return None
        cell = row.cells[COLUMN_KEYS.index(column)]
        return cell.plain if isinstance(cell, Text) else str(cell)

    @property
    def selected(self) -> Process | None:
        if not self._order:
            return None
        index = min(max(self.cursor_row, 0), len(self._order) - 1)
        row = self._rows.get(self._order[index])
        return row.process if row else None

    def _announce_selection(self) -> None:
        process = self.selected
        self._selected_key = row_key(process) if process else None
        self.post_message(self.Selected(process))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce_selection()

    def move_to_top(self) -> None:
        if self._order:
            self.move_cursor(row=0, animate=False)

    # ---- intents -----------------------------------------------------------------------------

    def _intent(self, message_type: type[_ProcessIntent]) -> None:
        process = self.selected
        if process is None:
            self.notify("no process selected", severity="warning")
            return
        self.post_message(message_type(process))

    def action_block(self) -> None:
        self._intent(self.BlockRequested)

    def action_unblock(self) -> None:
        self._intent(self.UnblockRequested)

    def action_relaunch(self) -> None:
        self._intent(self.RelaunchRequested)

    def action_details(self) -> None:
        self._intent(self.DetailsRequested)
