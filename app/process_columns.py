"""The process table's columns, one record each: what it shows, how wide, how important, how it
sorts and what the help says about it. A new column is one entry in COLUMNS.

Priority decides what a narrow terminal keeps: 0 is always shown; the table drops the highest
numbers first (widgets/process_table.visible_columns). At 80 columns PID, NAME, SOCK, the rates
(SEND, RECV), JAIL and DROPPED fit; the detail panel shows everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netjail.backends.model import Process
from netjail.widgets.format import human_count, listening_ports, remote_endpoints, summarise
from netjail.widgets.process_table import Cell, Column, Plain
from netjail.widgets.safe_text import printable
from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

SortKey = Callable[[Process], Any]


@dataclass(frozen=True, slots=True)
class RowContext:
    """What a cell may need beyond the process itself."""

    dropped: Mapping[str, int | None]  # jail -> dropped packets (None: not countable)
    netns: str  # the process's namespace label ("" in netjail's own)
    prefix: str = ""  # tree-view indentation before the name


@dataclass(frozen=True, slots=True)
class SortContext:
    dropped: Mapping[str, int | None]
    label: Callable[[Process], str]  # the namespace label, as the NETNS column shows it


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessColumn(Column):
    cell: Callable[[Process, RowContext], Cell]
    sort: Callable[[SortContext], SortKey] | None = None  # None: not a sort of `s`
    descending: bool = False  # the sort puts the biggest first
    help: str = ""


# Widths are terminal cells, not characters: a CJK character or an emoji takes two, and a
# process may choose a name of them to push the columns after NAME out of line.


def head_cells(text: str, width: int) -> str:
    """The longest start of `text` within `width` cells: a wide character that would straddle
    the edge is left out whole, never split."""
    used = 0
    for i, ch in enumerate(text):
        used += get_character_cell_size(ch)
        if used > width:
            return text[:i]
    return text


def tail_cells(text: str, width: int) -> str:
    """The longest end of `text` within `width` cells (as head_cells, from the other side)."""
    return head_cells(text[::-1], width)[::-1]


def fit(text: str, width: int) -> str:
    return text if cell_len(text) <= width else head_cells(text, width - 1) + "…"


def middle(text: str, width: int) -> str:
    """Cut in the middle: jail names differ at both ends (`telemetryd-25`, `telemetryd-26`)."""
    if cell_len(text) <= width:
        return text
    head = head_cells(text, (width - 1) // 2)
    return head + "…" + tail_cells(text, width - 1 - cell_len(head))


def tree_name(prefix: str, name: str, width: int) -> str:
    """Deep trees give up indentation (from the left, marked …) before the name loses letters."""
    keep = min(cell_len(name), width // 2)
    if len(prefix) + keep > width:  # the tree's prefix is one cell a character
        prefix = "…" + prefix[len(prefix) + keep + 1 - width :]
    return fit(prefix + name, width)


def dropped_cell(process: Process, dropped: Mapping[str, int | None]) -> Cell:
    """The jail's dropped packets; "n/a" for a jail netfilter cannot count (seccomp)."""
    if not process.jail or process.jail not in dropped:
        return ""
    count = dropped[process.jail]
    if count is None:
        return Text("n/a", style="dim", justify="right")
    return Text(human_count(count), style="bold red" if count else "", justify="right")


def dropped_count(dropped: Mapping[str, int | None], jail: str | None) -> int:
    count = dropped.get(jail or "", -1)
    return -1 if count is None else count


_RATE_CELLS: dict[str, Text] = {}  # a Text per shown value: most rows repeat a few (0, 1.2k ...)
_RATE_CELLS_MAX = 4096


def _rate_cell(rate: float | None) -> Cell:
    """Bytes a second, compact (999, 1.2k, 35M); blank when nothing of it is counted. Texts are
    shared between rows (DataTable renders a Text cell as it is, never changing it): building
    one costs more than the rest of a row's cells."""
    if rate is None:
        return ""
    shown = human_count(round(rate)) if rate >= 0.5 else "0"
    cell = _RATE_CELLS.get(shown)
    if cell is None:
        if len(_RATE_CELLS) >= _RATE_CELLS_MAX:
            _RATE_CELLS.clear()
        style = "dim" if shown == "0" else "bold" if rate >= 100_000 else ""
        cell = _RATE_CELLS[shown] = Text(shown, style=style, justify="right")
    return cell


def _by_rate(rate: Callable[[Process], float | None]) -> Callable[[SortContext], SortKey]:
    def key(context: SortContext) -> SortKey:
        return lambda p: (-(r if (r := rate(p)) is not None else -1.0), p.pid)

    return key


RATES_HELP = (
    "TCP payload bytes a second since the last refresh (k = 1000; sent = acknowledged by the peer), "
    "from the kernel's tcp_info of each socket. Not counted: UDP, raw and packet sockets (blank when "
    "a process has nothing else), bytes of a connection opened and closed between two refreshes, "
    "and, without root, sockets in other network namespaces."
)


def _netns_cell(label: str, width: int) -> Cell:
    label = printable(label)  # an `ip netns` name is whatever its creator chose
    if cell_len(label) > width:  # names of netjail's namespaces differ at the end: keep that
        label = "…" + tail_cells(label, width - 1)
    return Text(label, style="yellow") if label else ""


def _sockets_cell(process: Process) -> Cell:
    """The inet socket count; `N!` in yellow when packet sockets no block can cut come with it."""
    if process.unfilterable:
        return Text(f"{len(process.sockets)}!", justify="right", style="bold yellow")
    return Text(str(len(process.sockets)), justify="right") if process.sockets else ""


# Name, user, endpoints and unit are the process's (or its user's, or a unit file's) choice:
# escaped, and Plain (never markup), since `[fd00::1]:443` reads as a markup tag.
COLUMNS: tuple[ProcessColumn, ...] = (
    ProcessColumn(
        key="pid",
        label="PID",
        width=7,
        priority=0,
        cell=lambda p, c: str(p.pid),
        sort=lambda c: lambda p: p.pid,
    ),
    ProcessColumn(
        key="user",
        label="USER",
        width=8,
        priority=3,
        cell=lambda p, c: Plain(fit(printable(p.user, 64), 8)),
        sort=lambda c: lambda p: (p.user, p.pid),
    ),
    ProcessColumn(
        key="name",
        label="NAME",
        width=18,  # room for a name under a few levels of tree
        priority=0,
        cell=lambda p, c: Plain(tree_name(c.prefix, printable(p.name, 256), 18)),
        sort=lambda c: lambda p: (p.name.lower(), p.pid),
    ),
    ProcessColumn(
        key="sockets",
        label="SOCK",
        width=5,
        priority=2,
        right=True,
        cell=lambda p, c: _sockets_cell(p),
        sort=lambda c: lambda p: (-len(p.sockets), p.pid),
        descending=True,
        help="open TCP/UDP sockets (N!: with packet sockets no block can cut)",
    ),
    ProcessColumn(
        key="send",
        label="SEND",
        width=6,
        priority=1,
        right=True,
        cell=lambda p, c: _rate_cell(p.send_rate),
        sort=_by_rate(lambda p: p.send_rate),
        descending=True,
        help="TCP bytes sent a second (see below)",
    ),
    ProcessColumn(
        key="recv",
        label="RECV",
        width=6,
        priority=1,
        right=True,
        cell=lambda p, c: _rate_cell(p.recv_rate),
        sort=_by_rate(lambda p: p.recv_rate),
        descending=True,
        help="TCP bytes received a second (see below)",
    ),
    ProcessColumn(
        key="remote",
        label="REMOTE",
        width=13,
        priority=4,
        cell=lambda p, c: Plain(summarise(remote_endpoints(p.sockets), 13)),
        help="peers of connected sockets (+N: more than fit)",
    ),
    ProcessColumn(
        key="listen",
        label="LISTEN",
        width=8,
        priority=6,
        cell=lambda p, c: summarise(listening_ports(p.sockets), 8),
        help="listening TCP ports and bound UDP ports (u53 = UDP 53)",
    ),
    ProcessColumn(
        key="jail",
        label="JAIL",
        width=11,
        priority=0,
        cell=lambda p, c: Text(middle(printable(p.jail), 11), style="bold red") if p.jail else "",
        help="the jail holding the process",
    ),
    ProcessColumn(
        key="dropped",
        label="DROPPED",
        width=8,
        priority=0,
        right=True,
        cell=lambda p, c: dropped_cell(p, c.dropped),
        sort=lambda c: lambda p: (-dropped_count(c.dropped, p.jail), p.pid),
        descending=True,
        help="packets the jail's rules dropped, read back from the kernel (n/a: seccomp)",
    ),
    ProcessColumn(
        key="unit",
        label="UNIT",
        width=10,  # its systemd unit: a block never takes it out of it
        priority=7,
        cell=lambda p, c: Plain(fit(printable(p.unit), 10)) if p.unit else "",
        help="its systemd unit (a block keeps it in there)",
    ),
    ProcessColumn(
        key="netns",
        label="NETNS",
        width=16,  # blank in netjail's own namespace
        priority=5,
        cell=lambda p, c: _netns_cell(c.netns, 16),
        # grouped by namespace, netjail's own (no label) first
        sort=lambda c: lambda p: (c.label(p), p.pid),
        help="another network namespace: its `ip netns` name, else net:[inode]",
    ),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
BY_KEY = {c.key: c for c in COLUMNS}
# `s` cycles in this order first (as before the columns were records), then any other sortable
# column in table order: a new sortable column needs no edit here
_SORT_FIRST = ("pid", "name", "user", "sockets", "send", "recv", "dropped", "netns")
_SORTABLE = tuple(c.key for c in COLUMNS if c.sort is not None)
SORTS = tuple(k for k in _SORT_FIRST if k in _SORTABLE) + tuple(k for k in _SORTABLE if k not in _SORT_FIRST)
DESCENDING = frozenset(c.key for c in COLUMNS if c.descending)
