"""What the process table shows: filter, sort and tree order over a snapshot, as prepared rows.

Pure functions over model dataclasses, so they are unit-tested without a terminal and the
benchmark can time them apart from Textual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netjail.app.netns_labels import netns_label
from netjail.backends.model import Process
from netjail.widgets.format import human_count, listening_ports, remote_endpoints, summarise
from netjail.widgets.process_table import COLUMNS, Cell, Plain, ProcessRow, row_key
from netjail.widgets.safe_text import printable
from rich.text import Text

SortKey = Callable[[Process], Any]
SORTS: tuple[str, ...] = ("pid", "name", "user", "sockets", "dropped", "netns")
DESCENDING = frozenset({"sockets", "dropped"})  # the busiest first
_WIDTH = {key: width for key, _, width, _ in COLUMNS}


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
    if sort == "name":
        return lambda p: (p.name.lower(), p.pid)
    if sort == "user":
        return lambda p: (p.user, p.pid)
    if sort == "sockets":
        return lambda p: (-len(p.sockets), p.pid)
    if sort == "dropped":
        return lambda p: (-_count(dropped, p.jail), p.pid)
    if sort == "netns":  # grouped by namespace, netjail's own (no label) first
        return lambda p: (label(p), p.pid)
    return lambda p: p.pid


def _count(dropped: Mapping[str, int | None], jail: str | None) -> int:
    count = dropped.get(jail or "", -1)
    return -1 if count is None else count


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _tree_name(prefix: str, name: str, width: int) -> str:
    """Deep trees give up indentation (from the left, marked …) before the name loses letters."""
    keep = min(len(name), width // 2)
    if len(prefix) + keep > width:
        prefix = "…" + prefix[len(prefix) + keep + 1 - width :]
    return _fit(prefix + name, width)


def dropped_cell(process: Process, dropped: Mapping[str, int | None]) -> Cell:
    """The jail's dropped packets; "n/a" for a jail netfilter cannot count (seccomp)."""
    if not process.jail or process.jail not in dropped:
        return ""
    count = dropped[process.jail]
    if count is None:
        return Text("n/a", style="dim", justify="right")
    return Text(human_count(count), style="bold red" if count else "", justify="right")


def _netns_cell(label: str) -> Cell:
    width = _WIDTH["netns"]
    label = printable(label)  # an `ip netns` name is whatever its creator chose
    if len(label) > width:  # names of netjail's namespaces differ at the end: keep that
        label = "…" + label[len(label) - width + 1 :]
    return Text(label, style="yellow") if label else ""


def _sockets_cell(process: Process, style: str) -> Cell:
    """The inet socket count; `N!` in yellow when packet sockets no block can cut come with it."""
    if process.unfilterable:
        return Text(f"{len(process.sockets)}!", justify="right", style="bold yellow")
    return Text(str(len(process.sockets)), justify="right", style=style) if process.sockets else ""


def _cells(
    process: Process, dropped: Mapping[str, int | None], prefix: str, dim: bool, netns: str
) -> tuple[Cell, ...]:
    # Name and user are the process's (and its user's) choice: escaped, and Plain (never
    # markup); so are the endpoints, since `[fd00::1]:443` reads as a markup tag.
    style = "dim" if dim else ""
    name = _tree_name(prefix, printable(process.name, 256), _WIDTH["name"])
    jail: Cell = Text(printable(process.jail), style="bold red") if process.jail else ""
    drop = dropped_cell(process, dropped)
    plain = (
        str(process.pid),
        Plain(_fit(printable(process.user, 64), _WIDTH["user"])),
        Plain(name),
        _sockets_cell(process, style),
        Plain(summarise(remote_endpoints(process.sockets), _WIDTH["remote"])),
        summarise(listening_ports(process.sockets), _WIDTH["listen"]),
    )
    ns = _netns_cell(netns)
    # a unit name is the unit file's (or a user's transient unit's): escaped, never markup
    unit: Cell = Plain(_fit(printable(process.unit), _WIDTH["unit"])) if process.unit else ""
    if style:
        dimmed = (Text(str(c), style=style) if isinstance(c, (str, Plain)) else c for c in plain)
        return (*dimmed, jail, drop, unit, ns)
    return (*plain, jail, drop, unit, ns)


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
