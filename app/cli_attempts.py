"""`netjail attempts`: what jailed processes tried to reach (the attempts log, docs/attempts.md)."""

from __future__ import annotations

import argparse
import time

from netjail.app.cli_output import print_json, table
from netjail.backends.errors import BadInput
from netjail.widgets.safe_text import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from netjail.backends.attempts.store import AttemptLog, AttemptRow, NameRow

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "attempts", help="what jailed processes tried to reach: destinations, ports, DNS names"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--jail", metavar="NAME", help="only this jail")
    which.add_argument("--pid", type=int, help="only the jail this process is in")
    p.add_argument(
        "--since", metavar="DURATION", type=duration, help="only what was seen in the last 30s, 10m, 2h, 1d"
    )
    p.add_argument("--follow", action="store_true", help="then print each new attempt as it happens")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_attempts)


def duration(text: str) -> float:
    """`30s`, `10m`, `2h`, `1d` or plain seconds, as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not (number.isascii() and number.isdigit()) or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: a number with s, m, h or d")
    return int(number) * _UNITS[unit]


def _jail_of(pid: int) -> str:
    from netjail.backends.jails.state import Store

    for jail in Store().load().jails.values():
        if any(m.pid == pid for m in jail.members):
            return jail.name
    raise BadInput(f"process {pid} is in no jail")


def _flat(row: AttemptRow) -> dict[str, Any]:
    return {
        "jail": row.jail,
        "direction": row.direction,
        "proto": row.proto,
        "remote": row.remote,
        "port": row.port,
        "kind": row.kind,
        "name": row.name,
        "name_from": row.name_from,
        "count": row.count,
        "bytes": row.bytes,
        "first": round(row.first, 3),
        "last": round(row.last, 3),
        "uid": row.uid,
        "pid": row.pid,
        "pid_from": row.pid_from,
    }


def _rows(rows: list[AttemptRow]) -> list[list[str]]:
    from netjail.widgets.format import PORTED, clock  # not at import: `--help` loads every command

    return [
        [
            printable(r.jail),
            r.direction,
            r.proto,
            r.remote,
            str(r.port) if r.proto in PORTED else "",
            r.kind,
            printable(r.name or "", 40),
            str(r.count),
            clock(r.first),
            clock(r.last),
        ]
        for r in rows
    ]


def _names_text(names: list[NameRow]) -> list[str]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for n in names:
        grouped.setdefault((n.jail, n.name), []).append(n.qtype)
    lines = []
    for (jail, name), qtypes in grouped.items():
        kinds = ", ".join(printable(q) for q in qtypes)
        lines.append(f"{printable(jail)} tried to resolve {printable(name, 80)} ({kinds})")
    return lines


def _open() -> AttemptLog:
    from netjail.backends.attempts.store import AttemptLog
    from netjail.backends.jails import views
    from netjail.backends.jails.state import state_dir

    views.require_root("reading the attempts log")
    return AttemptLog(state_dir(), create=False)


def _attempts(a: argparse.Namespace) -> int:
    import sqlite3

    from netjail.backends.errors import OperationFailed

    try:
        return _show(a)
    except sqlite3.Error as exc:  # a log another netjail is writing, or a damaged file
        raise OperationFailed(f"cannot read the attempts log: {exc}") from None


def _show(a: argparse.Namespace) -> int:
    jail = a.jail if a.pid is None else _jail_of(a.pid)
    since = None if a.since is None else time.time() - a.since
    log = _open()
    try:
        rows, names = log.attempts(jail=jail, since=since), log.names(jail=jail, since=since)
        last = log.last_event()
        if a.json:
            print_json(
                {
                    "attempts": [_flat(r) for r in rows],
                    "names": [
                        {
                            "jail": n.jail,
                            "name": n.name,
                            "qtype": n.qtype,
                            "count": n.count,
                            "first": round(n.first, 3),
                            "last": round(n.last, 3),
                        }
                        for n in names
                    ],
                },
                stream=a.follow,
            )
        elif rows or names:
            header = ["JAIL", "DIR", "PROTO", "REMOTE", "PORT", "KIND", "NAME", "COUNT", "FIRST", "LAST"]
            if rows:
                print(table(header, _rows(rows)))
            for line in _names_text(names):
                print(line)
        else:
            print("no attempts recorded")
        while a.follow:
            time.sleep(0.25)
            if log.db is None:  # no collector had run yet: the log appears with the first jail
                log.close()
                log = _open()
                continue
            for event_id, row in log.events_after(last, jail=jail):
                last = event_id
                if a.json:
                    print_json(_flat(row), stream=True)
                else:
                    print("  ".join(_rows([row])[0][:8]), flush=True)
        return 0
    finally:
        log.close()
