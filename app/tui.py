"""`netjail-tui`: the dashboard. `create_app` is the one factory the entry point and tests share."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence

from netjail.app.cli import BACKEND_HELP, BACKEND_NAMES
from netjail.app.netjail_app import NetjailApp
from netjail.app.netns_labels import named_netns
from netjail.backends import hardening
from netjail.backends.engine import Engine
from netjail.backends.engine_api import EngineAPI
from netjail.backends.errors import EXIT_BAD_INPUT, NetjailError
from netjail.backends.system.inventory import Inventory
from netjail.backends.version import __version__
from netjail.widgets.safe_text import printable


def create_app(
    engine: EngineAPI | None = None,
    interval: float = 1.0,
    counters_interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    netns_names: Callable[[], dict[int, str]] = named_netns,
) -> NetjailApp:
    """`netns_names`: reads the `ip netns` names (tests with pinned data pin these too)."""
    # the dashboard's inventory also counts TCP bytes per socket, for the SEND/RECV rates
    # (`netjail ps` keeps the plain one: a single snapshot has no rate)
    engine = engine if engine is not None else Engine(inventory=Inventory(traffic=True))
    return NetjailApp(engine, interval, counters_interval, clock, netns_names)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0.05 and 3600 seconds: {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"netjail-tui: {printable(message)}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
        prog="netjail-tui", description="Live dashboard: processes, sockets, jails; block in a key."
    )
    parser.add_argument("--version", action="version", version=f"netjail {__version__}")
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="process and socket refresh period (default 1)",
    )
    parser.add_argument("--backend", choices=BACKEND_NAMES, help=BACKEND_HELP)
    parser.add_argument(
        "--counters-interval",
        type=_seconds,
        default=0.5,
        metavar="SECONDS",
        help="jail and dropped-packet counter refresh period (default 0.5)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.backend:
            from netjail.backends.firewall import registry

            registry.request(args.backend)
        app = create_app(interval=args.interval, counters_interval=args.counters_interval)
    except NetjailError as exc:
        sys.stderr.write(f"netjail-tui: {printable(str(exc))}\n")
        return exc.exit_code
    if os.geteuid() == 0:
        # before Textual owns the terminal: it draws on fd 2, which a first extension load
        # briefly redirects to keep libxtables' warnings off the screen
        with contextlib.suppress(NetjailError):
            Engine.warm_up()
    app.run()
    return app.return_code or 0


def entry() -> None:
    hardening.harden()  # from "/", sanitized environment: before anything loads a library
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
