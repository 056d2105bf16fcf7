"""`netjail doctor [--json]`: one ok/warn/fail line per check; exit 1 when any check fails."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from netjail.app.cli_output import print_json
from netjail.backends.errors import EXIT_FAILED, EXIT_OK
from netjail.widgets.safe_text import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:  # `--help` imports every command module: no dataclasses for it
    from typing import Any

    from netjail.backends.model import Check


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="check this machine: privileges, cgroup2, xtables matches, other firewalls, marks in use",
        description="Check whether netjail can work here. Exit status 0 when no check fails "
        "(warnings allowed), 1 when at least one does.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array of {name, status, detail, marks}")
    p.set_defaults(func=run)


def format_checks(checks: Sequence[Check]) -> str:
    """One line per check; the marks check adds one indented line per mark in use."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        # details quote tool output and paths (another firewall's rule comments, a cgroup mount)
        lines.append(f"{c.status:<6}{c.name:<{width}}  {printable(c.detail)}\n")
        for m in c.marks:
            seen = "overlaps" if m.overlaps else "clear"
            lines.append(f"{'':<{6 + width}}  {seen:<9}{m.value:#x}/{m.mask:#x}  {printable(m.where)}\n")
    return "".join(lines)


def run(args: argparse.Namespace) -> int:
    from netjail.backends.engine import Engine  # keep `--help` import-light

    checks = Engine().doctor()
    if args.json:
        print_json(checks)
    else:
        sys.stdout.write(format_checks(checks))
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK
