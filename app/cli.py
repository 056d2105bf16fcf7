"""`netjail` command line: every TUI action, non-interactively, with `--json` for scripts.

Each sub-command lives in its own module (`cli_ps`, `cli_doctor`, `cli_jails` ...) exposing
`register(subparsers)`; this module only builds the parser and turns engine errors into the
documented exit codes with one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from netjail.app import cli_output
from netjail.app.cli_output import print_json  # noqa: F401 - re-exported for commands
from netjail.backends import hardening
from netjail.backends.errors import EXIT_BAD_INPUT, EXIT_FAILED, NetjailError
from netjail.widgets.safe_text import printable

EXIT_CODES_HELP = """exit codes:
  0  ok
  1  operation failed
  2  bad input (unknown or protected PID, malformed CIDR/port ...)
  3  insufficient privilege (needs root)
  4  unsupported environment (missing kernel feature or tool)
"""

Handler = Callable[[argparse.Namespace], int]


class _Version(argparse.Action):
    """`--version`, reading package metadata only when asked (importlib.metadata: ~15 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from netjail.backends.version import __version__

        sys.stdout.write(f"netjail {__version__}\n")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our bad-input code and a one-line message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"netjail: {printable(message)}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from netjail.app import cli_doctor, cli_jails, cli_ps, cli_run  # keep `--help` import-light

    parser = _Parser(
        prog="netjail",
        description="Cut a Linux process off the network and watch what it tries to do.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    for module in (cli_ps, cli_jails, cli_run, cli_doctor):
        module.register(sub)
    pretty = "indented JSON (default: compact, one line, like `ip -j`)"
    parser.add_argument("-p", "--pretty", action="store_true", help=pretty)
    for command in sub.choices.values():  # `netjail -p ps --json` and `netjail ps --json -p`
        command.add_argument("-p", "--pretty", action="store_true", default=argparse.SUPPRESS, help=pretty)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cli_output.PRETTY = args.pretty
    handler: Handler = args.func
    try:
        return handler(args)
    except NetjailError as exc:
        sys.stderr.write(f"netjail: {printable(str(exc))}\n")  # errors name processes, paths
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `netjail ps | head`: the reader left; nothing to report.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("NETJAIL_DEBUG"):
            raise
        sys.stderr.write(
            f"netjail: internal error: {type(exc).__name__}: {printable(str(exc))} "
            "(NETJAIL_DEBUG=1 for details)\n"
        )
        return EXIT_FAILED


def entry() -> None:
    hardening.harden()  # from "/", sanitized environment: before anything loads a library
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
