"""The process table: renders prepared rows, keeps the cursor on the same process across
refreshes, and posts intents (block, unblock, details) for the screen to act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple

from netjail.backends.model import Process
from rich.text import Text
from textual import events
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


@dataclass(frozen=True, slots=True)
class Column:
    """A fixed width (refreshing 2,000 rows never re-measures text) and a priority: 0 is always
    shown, higher numbers drop out first when the table is too narrow for every column."""

    key: str
    label: str
    width: int
    priority: int
    right: bool = False


_FULL_REBUILD_REMOVALS = 64  # DataTable.remove_row is O(rows): past this a rebuild is cheaper
CELL_PADDING = 1  # DataTable's default, each side of every cell


def visible_columns(columns: Sequence[Column], width: int, padding: int = CELL_PADDING) -> tuple[int, ...]:
    """Indices (in table order) of the columns that fit in `width` cells: by priority, the first
    one that does not fit ends the list (a less important one never shows in place of a more
    important one); priority 0 always shows."""
    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(columns)), key=lambda i: (columns[i].priority, i)):
        need = columns[i].width + 2 * padding
        if columns[i].priority and used + need > width:
            break
        chosen.add(i)
        used += need
    return tuple(sorted(chosen))


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
        Binding("R", "relaunch", "Relaunch"),
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

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cursor_foreground_priority="css")
        self._columns = tuple(columns)
        self._keys = tuple(c.key for c in columns)
        self._shown: tuple[int, ...] = ()  # indices into _columns of the columns on screen
        self._rows: dict[str, ProcessRow] = {}
        self._order: list[str] = []
        self._selected_key: str | None = None
        self._indicator: tuple[str, bool] | None = None

    def on_mount(self) -> None:
        self._fit_columns(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_columns(event.size.width)

    # ---- columns -----------------------------------------------------------------------------

    @property
    def shown_columns(self) -> list[str]:
        return [self._keys[i] for i in self._shown]

    def _fit_columns(self, width: int) -> None:
        """Show the columns that fit (room kept for the scrollbar, so rows coming and going
        never reflow them); the cursor stays on the same process."""
        if width <= 0:
            width = 10_000  # not laid out yet: every column, fitted at the first resize
        room = width - self.styles.scrollbar_size_vertical
        shown = visible_columns(self._columns, room, self.cell_padding)
        if shown == self._shown:
            return
        self._shown = shown
        selected, scroll_y = self._selected_key, self.scroll_y
        self.clear(columns=True)
        for i in shown:
            c = self._columns[i]
            self.add_column(self._label(c), width=c.width, key=c.key)
        for key in self._order:
            self.add_row(*self._project(self._rows[key].cells), key=key)
        if selected in self._rows:
            self.move_cursor(row=self._order.index(selected), animate=False)
        self.scroll_y = scroll_y

    def _project(self, cells: tuple[Cell, ...]) -> list[Cell]:
        return [cells[i] for i in self._shown]

    def _label(self, c: Column) -> Text:
        arrow = ""
        if self._indicator is not None and self._indicator[0] == c.key:
            arrow = " ▼" if self._indicator[1] else " ▲"
        return Text(f"{c.label}{arrow}", justify="right" if c.right else "left")

    # ---- rendering ---------------------------------------------------------------------------

    def set_sort_indicator(self, column: str, descending: bool) -> None:
        if self._indicator == (column, descending):
            return
        self._indicator = (column, descending)
        for i in self._shown:
            c = self._columns[i]
            self.columns[ColumnKey(c.key)].label = self._label(c)
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
                self.add_row(*self._project(row.cells), key=row.key)
        self._update_cells(rows)
        left = set(gone)
        current = [k for k in self._order if k not in left] + [k for k in new_order if k not in self._rows]
        if current != new_order:
            position = {key.split(":", 1)[0]: i for i, key in enumerate(new_order)}  # PIDs are unique
            self.sort("pid", key=lambda cell: position[cell.plain if isinstance(cell, Text) else str(cell)])

    def set_column(self, column: str, cells: Mapping[str, Cell]) -> None:
        """New values for one column of some rows (row key -> cell), order unchanged."""
        index = self._keys.index(column)
        on_screen = index in self._shown
        for key, cell in cells.items():
            row = self._rows.get(key)
            if row is None or row.cells[index] == cell:
                continue
            if on_screen:
                self.update_cell(key, column, cell)
            self._rows[key] = replace(row, cells=(*row.cells[:index], cell, *row.cells[index + 1 :]))

    def _update_cells(self, rows: Sequence[ProcessRow]) -> None:
        for row in rows:
            old = self._rows.get(row.key)
            if old is None or old.cells == row.cells:
                continue
            before, after = old.cells, row.cells
            for i in self._shown:
                if before[i] != after[i]:
                    self.update_cell(row.key, self._keys[i], after[i])

    def _rebuild(self, rows: Sequence[ProcessRow]) -> None:
        scroll_y = self.scroll_y
        self.clear()
        for row in rows:
            self.add_row(*self._project(row.cells), key=row.key)
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
        cell = row.cells[self._keys.index(column)]
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
