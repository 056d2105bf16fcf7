"""`netjail ps`: processes and their inet sockets, as an aligned table or `--json`.

Processes holding packet sockets (tcpdump, DHCP clients) are listed too, marked `!` in SOCKS
and in `--json` by a non-empty `unfilterable`: a block cannot cut those sockets."""

from __future__ import annotations

import argparse
import sys

from netjail.app.cli_output import print_json, print_notes
from netjail.backends.errors import NoSuchProcess
from netjail.widgets.safe_text import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:  # `--help` imports every command module: no dataclasses for it
    from typing import Any

    from netjail.backends.model import Process, Snapshot, Socket

COLUMNS = ("PID", "USER", "NAME", "SOCKS", "LISTEN", "REMOTE", "NETNS", "JAIL")
_SHOWN = 3  # endpoints listed per cell before "+N"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "ps",
        help="list processes and their sockets",
        description="List processes with inet or packet sockets (every process with --all).",
    )
    p.add_argument("--all", action="store_true", help="also list processes without inet sockets")
    p.add_argument("--json", action="store_true", help="print a JSON array of process objects")
    p.add_argument("--pid", type=int, metavar="N", help="only this process (exit 2 if there is none)")
    p.add_argument(
        "--filter", metavar="TEXT", help="only processes whose name, cmdline, user or pid contain TEXT"
    )
    p.set_defaults(func=run)


def take_snapshot(all_processes: bool) -> Snapshot:
    # not Engine().snapshot: the same call without importing the firewall and launch code
    from netjail.backends.jails.labelled import labelled_snapshot
    from netjail.backends.jails.state import Store
    from netjail.backends.system.inventory import Inventory

    return labelled_snapshot(Store(), Inventory(), all_processes=all_processes)


def run(args: argparse.Namespace) -> int:
    snap = take_snapshot(all_processes=args.all or args.pid is not None)
    procs = list(snap.processes)
    if args.pid is not None:
        procs = [p for p in procs if p.pid == args.pid]
        if not procs:
            raise NoSuchProcess(f"no such process: {args.pid}")
    if args.filter:
        procs = [p for p in procs if matches(p, args.filter)]
    print_notes(snap.denied)
    if args.json:
        print_json(procs, bulk=True)
    else:
        sys.stdout.write(render_table(procs, snap.own_netns))
    return 0


def matches(p: Process, text: str) -> bool:
    needle = text.lower()
    haystack = (p.name, " ".join(p.cmdline), p.user, str(p.pid))
    return any(needle in h.lower() for h in haystack)


def endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _summary(items: list[str]) -> str:
    seen = list(dict.fromkeys(items))
    if len(seen) <= _SHOWN:
        return ",".join(seen) or "-"
    return ",".join(seen[:_SHOWN]) + f",+{len(seen) - _SHOWN}"


def listening(sockets: tuple[Socket, ...]) -> str:
    """Ports that accept traffic: TCP listeners and bound, unconnected UDP sockets."""
    return _summary(
        [f"{s.proto}/{s.local_port}" for s in sockets if s.state in ("LISTEN", "UNCONN") and s.local_port]
    )


def remotes(sockets: tuple[Socket, ...]) -> str:
    return _summary([endpoint(s.remote_addr, s.remote_port) for s in sockets if s.remote_port])


def row(p: Process, own_netns: int | None) -> tuple[str, ...]:
    """One table row; every text a process or user chose is shown escaped (`printable`)."""
    netns = "-" if p.netns is None else str(p.netns) + ("" if p.netns == own_netns else "*")
    return (
        str(p.pid),
        printable(p.user or "?", 32),
        printable(p.name, 24),
        str(len(p.sockets)) + ("!" if p.unfilterable else ""),
        listening(p.sockets),
        remotes(p.sockets),
        netns,
        printable(p.jail or "-"),
    )


def render_table(procs: list[Process], own_netns: int | None) -> str:
    rows = [COLUMNS, *(row(p, own_netns) for p in procs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {0, 3}  # numbers
    lines = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    if any(p.netns is not None and p.netns != own_netns for p in procs):
        lines.append("* another network namespace than netjail's")
    if any(p.unfilterable for p in procs):
        lines.append(
            "! also holds packet sockets (AF_PACKET) netfilter cannot see: block leaves them open; "
            "relaunch under seccomp (netjail run --seccomp) to block it fully"
        )
    return "\n".join(lines) + "\n"
