"""`netjail block | unblock | list | counters | reset`: the jail commands."""

from __future__ import annotations

import argparse
import sys
import time

from netjail.app.cli_output import print_json, print_notes, table
from netjail.backends.errors import BadInput
from netjail.widgets.safe_text import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:  # `--help` imports every command module: no dataclasses for it
    from typing import Any

    from netjail.backends.engine_api import EngineAPI
    from netjail.backends.model import Counters, JailCounters, JailInfo


def _engine() -> EngineAPI:
    from netjail.backends.engine import Engine  # only the commands that act load it

    return Engine()


def register(sub: Any) -> None:
    p = sub.add_parser("block", help="cut a running process (cgroup jail), a user or a group off the network")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("pid", type=int, nargs="?")
    who.add_argument("--user", metavar="NAME|UID", help="every process of this user, now and later")
    who.add_argument("--group", metavar="NAME|GID", help="every process of this group, now and later")
    p.add_argument("--yes", action="store_true", help="--user/--group: do not ask before blocking")
    p.add_argument("--tree", action="store_true", help="also every current descendant")
    p.add_argument("--jail", metavar="NAME", help="jail name (default: NAME-PID)")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR[:PORT]",
        help="still allow this prefix (repeatable, v4 or v6; [v6]:PORT)",
    )
    p.add_argument("--allow-loopback", action="store_true", help="still allow loopback traffic")
    p.add_argument(
        "--kill-connections",
        action="store_true",
        help="destroy its established TCP connections (SOCK_DESTROY)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="allow PID 1 and netjail's own ancestors, and re-mark sockets carrying another "
        "program's mark (their mark is put back on unblock)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_block)

    p = sub.add_parser("unblock", help="release a process, a jail or every jail")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("pid", type=int, nargs="?")
    target.add_argument("--jail", metavar="NAME")
    target.add_argument("--all", action="store_true")
    p.add_argument("--keep-log", action="store_true", help="keep the jail's attempts log after it is removed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_unblock)

    p = sub.add_parser("list", help="jails, their members, allow-lists and counters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = sub.add_parser("counters", help="packets and bytes each jail dropped and allowed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", type=_positive, metavar="SECONDS", help="print again every SECONDS")
    p.set_defaults(func=_counters)

    p = sub.add_parser("reset", help="remove every netjail rule, chain, cgroup and state file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_reset)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:  # also refuses inf and nan
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _block(a: argparse.Namespace) -> int:
    engine = _engine()
    if a.pid is None:
        return _block_owner(engine, a)
    from netjail.backends.model import BlockRequest

    req = BlockRequest(
        pid=a.pid,
        tree=a.tree,
        jail=a.jail,
        allow=tuple(a.allow),
        allow_loopback=a.allow_loopback,
        kill_connections=a.kill_connections,
        force=a.force,
    )
    result = engine.block(req)
    print_notes(result.notes)
    if a.json:
        print_json(result)
        return 0
    pids = ", ".join(f"{m.pid} ({printable(m.name, 64)})" for m in result.members)
    print(
        f"blocked {pids} in jail {printable(result.jail)} [{result.strategy}]: "
        f"{result.marked_sockets} existing sockets marked"
        + (
            f", the rest matched by address in fallback sets ({result.set_entries} entries, "
            f"{result.socket_rules} set rules)"
            if result.set_entries
            else (f", {result.socket_rules} address rules for the rest" if result.socket_rules else "")
        )
        + (f", {result.killed_connections} connections killed" if a.kill_connections else "")
    )
    if result.unit:  # it stays in its unit: say so, and where the jail is
        print(
            f"PID {result.members[0].pid} belongs to {printable(result.unit)}: "
            f"jailed inside it, in {printable(result.cgroup)}"
        )
    if result.unfilterable or result.shared:
        from netjail.backends.jails.block_report import result_lines

        for line in result_lines(result):
            print(f"warning: {printable(line)}")
    return 0


def _block_owner(engine: EngineAPI, a: argparse.Namespace) -> int:
    """Show every process the block affects, ask (unless --yes), then block."""
    ignored = [
        flag for flag, used in (("--tree", a.tree), ("--kill-connections", a.kill_connections)) if used
    ]
    if ignored:
        raise BadInput(f"{', '.join(ignored)} does not apply to --user/--group")
    procs = engine.preview_owner(a.user, a.group, force=a.force)
    who = printable(f"user {a.user}" if a.user else f"group {a.group}")
    out = sys.stderr if a.json else sys.stdout
    print(
        f"blocking {who} affects {len(procs)} running process(es), and every one it starts later:", file=out
    )
    if procs:
        print(
            table(
                ["PID", "USER", "NAME", "SOCKS"],
                [[str(p.pid), p.user, p.name, str(len(p.sockets))] for p in procs],
            ),
            file=out,
        )
    if not a.yes:
        if not sys.stdin.isatty():
            raise BadInput(f"refusing to block {who} without --yes (no terminal to ask)")
        engine.require_root(f"blocking a {'user' if a.user else 'group'}")  # before asking, not after
        print("block them? [y/N] ", end="", file=out, flush=True)
        try:
            answer = input()
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing blocked", file=out)
            return 1
    from netjail.backends.model import OwnerBlockRequest

    req = OwnerBlockRequest(
        user=a.user, group=a.group, jail=a.jail, allow=tuple(a.allow), allow_loopback=a.allow_loopback
    )
    result = engine.block_owner(req, force=a.force)
    print_notes(result.notes)
    if a.json:
        print_json(result)
    else:
        print(
            f"blocked {who} in jail {printable(result.jail)} [owner]: {len(result.members)} process(es) now, "
            f"{result.socket_rules} rules for their existing sockets"
            + (f" ({result.set_entries} entries in fallback sets)" if result.set_entries else "")
        )
    return 0


def _unblock(a: argparse.Namespace) -> int:
    engine = _engine()
    from netjail.backends.model import UnblockRequest

    if a.keep_log:
        _keep_logs(a)
    result = engine.unblock(UnblockRequest(pid=a.pid, jail=a.jail, all=a.all))
    print_notes(result.notes)
    if a.json:
        print_json(result)
        return 0
    pids = ", ".join(str(m.pid) for m in result.released) or "nothing"
    removed_jails = printable(", ".join(result.removed_jails))
    removed = f"; removed jail(s) {removed_jails}" if result.removed_jails else ""
    print(f"released {pids}{removed}")
    return 0


def _keep_logs(a: argparse.Namespace) -> None:
    """Mark the jails this unblock may remove as kept in the attempts log (docs/attempts.md)."""
    from netjail.backends.attempts.store import AttemptLog
    from netjail.backends.jails.state import Store, state_dir

    jails = Store().load().jails
    if a.all:
        names = list(jails)
    elif a.jail:
        names = [a.jail]
    else:
        names = [j.name for j in jails.values() if any(m.pid == a.pid for m in j.members)]
    log = AttemptLog(state_dir())
    try:
        for name in names:
            log.keep(name)
    finally:
        log.close()


# `list` trusts a watcher that reconciled this recently (it does so every second) instead of
# reconciling itself: a reconciliation reads every jail's processes and re-syncs their rules.
FRESH_WATCHER = 3.0


def _list(a: argparse.Namespace) -> int:
    from netjail.backends.jails import views as jail_views
    from netjail.backends.jails import watcher
    from netjail.backends.jails.state import Store

    store = Store()
    if watcher.reconciled_within(store.dir, FRESH_WATCHER):
        jail_views.require_root("reading netjail's jails")
        jails = jail_views.jail_infos(*jail_views.read_now(store))
    else:
        engine = _engine()
        engine.require_root("reading netjail's jails")
        notes = engine.reconcile()
        jails = engine.jails(reconcile=False)
        print_notes(notes)
    if a.json:
        print_json(list(jails))
        return 0
    if not jails:
        print("no jails")
        return 0
    print(
        table(["JAIL", "STRATEGY", "MEMBERS", "ALLOW", "DROPPED", "ALLOWED"], [_jail_row(j) for j in jails])
    )
    return 0


def _jail_row(j: JailInfo) -> list[str]:
    members = " ".join(f"{m.pid}" + ("" if m.alive else "(gone)") for m in j.members) or "-"
    allow = ", ".join(j.allow + (("loopback",) if j.allow_loopback else ())) or "nothing"
    c = j.counters
    if not j.countable:  # seccomp: netfilter never sees what it refuses
        return [j.name, j.strategy, members, allow, "not countable", "not countable"]
    return [
        j.name,
        j.strategy,
        members,
        allow,
        _pb(c.dropped_packets, c.dropped_bytes),
        _pb(c.allowed_packets, c.allowed_bytes),
    ]


def _pb(packets: int, nbytes: int) -> str:
    from netjail.widgets.format import human_bytes  # the dashboard's units; not needed by --help

    return f"{packets} pkts / {human_bytes(nbytes)}"


def _counter_rows(items: tuple[JailCounters, ...]) -> list[list[str]]:
    rows = []
    for c in items:
        if not c.countable:
            rows.append([c.jail, "-", "not countable", "", "", ""])
            continue
        for label, part in (("all", c.total), ("ipv4", c.inet), ("ipv6", c.inet6)):
            rows.append([c.jail if label == "all" else "", label, *_cells(part)])
    return rows


def _cells(c: Counters) -> list[str]:
    return [str(c.dropped_packets), str(c.dropped_bytes), str(c.allowed_packets), str(c.allowed_bytes)]


def _counters(a: argparse.Namespace) -> int:
    # the engine's counters(), without importing the engine (see jail_views.py)
    from netjail.backends.jails import views as jail_views
    from netjail.backends.jails.state import Store

    store = Store()
    while True:
        jail_views.require_root("reading netjail's counters")
        items = jail_views.jail_counters(*jail_views.read_now(store))
        if a.json:
            rows = [
                {
                    "jail": c.jail,
                    "countable": c.countable,
                    **_flat(c.total),
                    "inet": _flat(c.inet),
                    "inet6": _flat(c.inet6),
                }
                for c in items
            ]
            print_json(rows, stream=bool(a.watch))  # a stream: one JSON document per line, per tick
        elif items:
            print(
                table(
                    ["JAIL", "FAMILY", "DROP PKTS", "DROP BYTES", "ALLOW PKTS", "ALLOW BYTES"],
                    _counter_rows(items),
                )
            )
        else:
            print("no jails")
        if not a.watch:
            return 0
        sys.stdout.flush()
        time.sleep(a.watch)
        if not a.json:
            print()


def _flat(c: Counters) -> dict[str, int]:
    return {
        "dropped_packets": c.dropped_packets,
        "dropped_bytes": c.dropped_bytes,
        "allowed_packets": c.allowed_packets,
        "allowed_bytes": c.allowed_bytes,
    }


def _reset(a: argparse.Namespace) -> int:
    result = _engine().reset()
    if a.json:
        print_json(result)
    else:
        print(
            f"reset: removed {len(result.removed_jails)} jail(s), released {len(result.released)} process(es)"
        )
    return 0
