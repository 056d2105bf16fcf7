"""`netjail run`: start a command already jailed (netns, gid owner, or seccomp)."""

from __future__ import annotations

import argparse
import os

from netjail.app.cli_output import print_notes
from netjail.backends import hardening
from netjail.backends.errors import BadInput

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a command already jailed (--netns, --gid or --seccomp)",
        description=(
            "Run CMD jailed in a session of its own: on a new pty relayed to this terminal when "
            "there is one, in the user's home (or --cwd), with a minimal environment (PATH, HOME, "
            "USER, LOGNAME, SHELL, TERM, LANG, LC_*; --keep-env for more). netjail exits with "
            "CMD's exit code."
        ),
    )
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--netns",
        action="store_true",
        help="in a new network namespace: loopback only, or with --allow a filtered link (--link)",
    )
    how.add_argument(
        "--gid",
        nargs="?",
        const=-1,
        type=_gid,
        metavar="N",
        help="under group netjail-JAIL (or group N) whose packets an owner rule drops",
    )
    how.add_argument(
        "--seccomp",
        action="store_true",
        help="socket() refused for network families (no root needed, nothing counted)",
    )
    p.add_argument("--jail", metavar="NAME", help="jail name (default: CMD-PID)")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR[:PORT]",
        help="still allow this prefix (repeatable, v4 or v6; [v6]:PORT)",
    )
    p.add_argument(
        "--link",
        choices=("pasta", "veth"),
        help="netns with --allow: pasta (user-mode, the default when installed: nothing host-wide "
        "changes) or veth (IP forwarding on and NAT here while it exists)",
    )
    p.add_argument("--allow-loopback", action="store_true", help="gid: keep loopback reachable")
    p.add_argument("--user", metavar="USER", help="run as USER (default: SUDO_USER, else you)")
    p.add_argument("--cwd", metavar="DIR", help="start in DIR, which USER must be able to enter")
    p.add_argument(
        "--keep-env",
        action="append",
        default=[],
        metavar="VAR",
        help="pass VAR from netjail's environment too (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep the jail after the command exits")
    p.add_argument("--force", action="store_true", help="--gid N: even if N is root's or already in use")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")
    p.set_defaults(func=_run)


def _gid(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a group id: write `--gid -- CMD` (a new group) or `--gid N -- CMD`"
        )
    return int(text)


def _run(a: argparse.Namespace) -> int:
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    if not argv:
        raise BadInput("no command given: netjail run --netns -- CMD ARGS...")
    if "/" in argv[0] and not os.path.isabs(argv[0]) and (cwd := hardening.caller().cwd):
        argv = [os.path.join(cwd, argv[0]), *argv[1:]]  # typed relative to where netjail started
    from netjail.backends.jails.strategies import by_name

    strategy = "netns" if a.netns else "seccomp" if a.seccomp else "gid"
    info = by_name(strategy)
    assert info is not None
    ignored = [
        flag
        for flag, used, applies in (
            ("--allow-loopback", a.allow_loopback, info.loopback_option),
            ("--keep", a.keep, info.keep_option),
        )
        if used and not applies
    ]
    if ignored:
        raise BadInput(f"{', '.join(ignored)} does not apply to --{strategy}")
    from netjail.backends.engine import Engine  # keep `--help` import-light
    from netjail.backends.model import LaunchRequest

    engine = Engine()
    result = engine.run(
        LaunchRequest(
            argv=tuple(argv),
            strategy=strategy,
            jail=a.jail,
            allow=tuple(a.allow),
            allow_loopback=a.allow_loopback,
            user=a.user,
            gid=a.gid if a.gid is not None and a.gid >= 0 else None,
            keep=a.keep,
            force=a.force,
            cwd=os.path.join(hardening.caller().cwd or "/", a.cwd) if a.cwd else None,
            keep_env=tuple(a.keep_env),
            link=a.link or "",
        )
    )
    print_notes(result.notes)
    return result.exit_code or 0
