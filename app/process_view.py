"""What the process table shows: filter, sort and tree order over a snapshot, as prepared rows.

Pure functions over model dataclasses, so they are unit-tested without a terminal and the
benchmark can time them apart from Textual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from netjail.app.netns_labels import netns_label
from netjail.app.process_columns import (
    BY_KEY,
    COLUMNS,
    DESCENDING,
    SORTS,
    RowContext,
    SortContext,
    SortKey,
    dropped_cell,
)
from netjail.backends.model import Process
from netjail.widgets.process_table import Cell, Plain, ProcessRow, row_key
from rich.text import Text

__all__ = ["DESCENDING", "SORTS", "ViewOptions", "build_rows", "dropped_cell", "matches", "next_sort"]


@dataclass(frozen=True, slots=True)
class ViewOptions:
    query: str = ""
    sort: str = "pid"
    networked_only: bool = True
    tree: bool = False


def next_sort(sort: str) -> str:
    return SORTS[(SORTS.index(sort) + 1) % len(SORTS)]


def matches(process: Process, query: str) -> bool:
    """Numbers match a PID prefix or a port; text matches name, user, command line, jail or peer."""
    if not query:
        return True
    if query.isdigit():
        if str(process.pid).startswith(query):
            return True
        port = int(query)
        return any(s.local_port == port or s.remote_port == port for s in process.sockets)
    q = query.lower()
    haystack = (process.name, process.user, process.jail or "", process.unit or "", " ".join(process.cmdline))
    if any(q in field.lower() for field in haystack):
        return True
    return any(q in s.remote_addr or q in s.local_addr for s in process.sockets)


def _sort_key(sort: str, dropped: Mapping[str, int | None], label: Callable[[Process], str]) -> SortKey:
    make = BY_KEY[sort].sort if sort in BY_KEY else None
    if make is None:
        return lambda p: p.pid
    return make(SortContext(dropped, label))


def _dimmed(cell: Cell) -> Cell:
    if isinstance(cell, (str, Plain)):
        return Text(str(cell), style="dim")
    if not cell.style and not cell.spans:
        return Text(cell.plain, style="dim", justify=cell.justify)
    return cell  # a colour that means something (a jail, a count of drops) stays


_CELLS = tuple(column.cell for column in COLUMNS)


def _cells(
    process: Process, dropped: Mapping[str, int | None], prefix: str, dim: bool, netns: str
) -> tuple[Cell, ...]:
    context = RowContext(dropped, netns, prefix)
    cells = tuple([cell(process, context) for cell in _CELLS])
    return tuple(map(_dimmed, cells)) if dim else cells


def build_rows(
    processes: Sequence[Process],
    options: ViewOptions,
    dropped: Mapping[str, int | None],
    own_netns: int | None = None,
    netns_names: Mapping[int, str] | None = None,
) -> list[ProcessRow]:
    """Rows in display order. `dropped` maps a jail name to its dropped-packet count (None: the
    jail cannot be counted). Processes in another network namespace than `own_netns` are dimmed
    (rules made here do not reach them) and labelled with its `ip netns` name or `net:[INODE]`."""
    names = netns_names or {}

    def elsewhere(p: Process) -> bool:
        return own_netns is not None and p.netns is not None and p.netns != own_netns

    def label(p: Process) -> str:
        return netns_label(p.netns, own_netns, names)

    def row(p: Process, prefix: str = "", dim: bool = False) -> ProcessRow:
        return ProcessRow(row_key(p), p, _cells(p, dropped, prefix, dim, label(p)))

    visible = [
        p
        for p in processes
        if not p.kernel_thread
        and (p.sockets or p.unfilterable or p.jail or not options.networked_only)
        and matches(p, options.query)
    ]
    key = _sort_key(options.sort, dropped, label)
    if options.tree:
        return _tree_rows(processes, visible, key, row, elsewhere)
    visible.sort(key=key)
    if options.query.isdigit():  # the PID typed in full goes first
        exact = int(options.query)
        visible.sort(key=lambda p: p.pid != exact)
    return [row(p, dim=elsewhere(p)) for p in visible]


def _tree_rows(
    processes: Iterable[Process],
    visible: list[Process],
    key: SortKey,
    row: Callable[[Process, str, bool], ProcessRow],
    elsewhere: Callable[[Process], bool],
) -> list[ProcessRow]:
    """Visible processes under their ancestors (shown dimmed when they are only context)."""
    by_pid = {p.pid: p for p in processes}
    shown = {p.pid for p in visible}
    wanted = set(shown)
    for p in visible:
        parent = by_pid.get(p.ppid)
        while parent is not None and parent.pid not in wanted:
            wanted.add(parent.pid)
            parent = by_pid.get(parent.ppid) if parent.ppid != parent.pid else None
    children: dict[int, list[Process]] = {}
    roots: list[Process] = []
    for pid in wanted:
        p = by_pid[pid]
        if p.ppid in wanted and p.ppid != pid:
            children.setdefault(p.ppid, []).append(p)
        else:
            roots.append(p)
    rows: list[ProcessRow] = []

    def walk(p: Process, lead: str, branch: str) -> None:
        rows.append(row(p, lead + branch, p.pid not in shown or elsewhere(p)))
        kids = sorted(children.get(p.pid, ()), key=key)
        below = lead + ("  " if branch == "└─" else "│ " if branch else "")
        for i, kid in enumerate(kids):
            walk(kid, below, "└─" if i == len(kids) - 1 else "├─")

    for root in sorted(roots, key=key):
        walk(root, "", "")
    return rows
