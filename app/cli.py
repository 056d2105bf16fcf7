"""`netjail` command line: every TUI action, non-interactively, with `--json` for scripts.

Each sub-command lives in its own module (`cli_ps`, `cli_doctor`, `cli_jails` ...) exposing
`register(subparsers)`; this module only builds the parser and turns engine errors into the
documented exit codes with one line on stderr.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import gc
import os
import sys
from collections.abc import Callable, Sequence

from netjail.app import cli_output
from netjail.app.cli_output import print_json  # noqa: F401 - re-exported for commands
from netjail.backends import hardening
from netjail.backends.errors import EXIT_BAD_INPUT, EXIT_FAILED, NetjailError
from netjail.widgets.safe_text import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from typing import Any

EXIT_CODES_HELP = """exit codes:
  0  ok
  1  operation failed
  2  bad input (unknown or protected PID, malformed CIDR/port, another backend
     than the one live jails were made with ...)
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

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse builds a formatter for every add_argument (to check its metavar); given no
        # width, each imports shutil (with zlib, bz2 and lzma: ~2 ms) to ask the terminal's
        return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]  # typeshed: prog only


def _help_width() -> int:
    """What HelpFormatter computes through shutil.get_terminal_size: $COLUMNS, else the
    terminal's, else 80; minus 2."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns - 2


class _Skipped:
    """The parser of a command this run does not parse: what its module defines on it is
    dropped (argparse costs ~0.1 ms an argument, ~60 of them over all commands)."""

    def __getattr__(self, name: str) -> Callable[..., _Skipped]:
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """The sub-parsers action as each command module sees it, defining only `command`."""

    def __init__(self, sub: Any, command: str) -> None:
        self._sub, self._command = sub, command

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self._sub.add_parser(name, **kwargs) if name == self._command else _Skipped()


# the firewall backends (firewall/registry.py BACKENDS; tests/unit/test_backend_choice.py
# checks they are the same): `--help` loads no registry
BACKEND_NAMES = ("iptables", "nftables")
BACKEND_HELP = (
    "firewall backend (default: NETJAIL_BACKEND, else chosen for this host: `netjail doctor` "
    "says which and why); live jails keep the one they were made with"
)
_VALUED_OPTIONS = frozenset({"--backend"})  # top-level options whose value is the next word


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command `argv` names: its first word that is neither an option nor a top-level
    option's value; None for none."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given `argv` naming a command, one with only that command's arguments
    (parsing `argv` the same: any other command is unknown to it)."""
    import importlib  # the command modules: only `--help` and typos need them all

    parser = _Parser(
        prog="netjail",
        description="Cut a Linux process off the network and watch what it tries to do.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    command = None if argv is None else _command_in(argv)
    for name in ("cli_ps", "cli_jails", "cli_run", "cli_doctor", "cli_attempts"):
        module = importlib.import_module(f"netjail.app.{name}")
        module.register(sub if command is None else _OnlyCommand(sub, command))
        if command in sub.choices:
            break  # the modules after it define other commands
    if command is not None and command not in sub.choices:  # a typo: the full list of choices
        return build_parser()
    pretty = "indented JSON (default: compact, one line, like `ip -j`)"
    parser.add_argument("-p", "--pretty", action="store_true", help=pretty)
    parser.add_argument("--backend", choices=BACKEND_NAMES, help=BACKEND_HELP)
    for each in sub.choices.values():  # `netjail -p ps --json` and `netjail ps --json -p`
        each.add_argument("-p", "--pretty", action="store_true", default=argparse.SUPPRESS, help=pretty)
        each.add_argument("--backend", choices=BACKEND_NAMES, default=argparse.SUPPRESS, help=BACKEND_HELP)
    return parser


def runs_on(args: argparse.Namespace) -> bool:
    """Whether the command can run for long (`run` lives as long as its command, `--watch`
    forever): those keep Python's cyclic garbage collector."""
    return args.command == "run" or bool(getattr(args, "watch", None))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    cli_output.PRETTY = args.pretty
    if runs_on(args):
        gc.enable()  # the launcher turns the cyclic collector off for commands that end at once
    handler: Handler = args.func
    try:
        if args.backend:
            from netjail.backends.firewall import registry

            registry.request(args.backend)
        return handler(args)
    except NetjailError as exc:
        sys.stderr.write(f"netjail: {printable(str(exc))}\n")  # errors name processes, paths
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `netjail ps | head`: the reader left; nothing to report. A command that changes
        # something may have stopped before doing so (`block --user U --yes --json` writes its
        # preview to stderr first: with that pipe gone it blocked nothing and exited 0)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if args.command in _READ_ONLY:
            return 0
        _report("netjail: cannot write: Broken pipe (see `netjail list` for what was done)\n")
        return EXIT_FAILED
    except OSError as exc:
        if exc.errno not in _WRITE_FAILED:
            return _internal_error(exc)
        # `netjail ps --json > FILE` on a full disk (the state directory's own write errors are
        # NetjailErrors): one line and exit 1, not "internal error"
        if exc.filename is None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second failure at exit
        _report(f"netjail: cannot write: {exc.strerror}\n")
        return EXIT_FAILED
    except Exception as exc:
        return _internal_error(exc)


_READ_ONLY = frozenset({"ps", "list", "counters", "doctor", "attempts"})  # a cut output is all they lose
_WRITE_FAILED = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def _internal_error(exc: Exception) -> int:
    if os.environ.get("NETJAIL_DEBUG"):
        raise exc
    sys.stderr.write(
        f"netjail: internal error: {type(exc).__name__}: {printable(str(exc))} "
        "(NETJAIL_DEBUG=1 for details)\n"
    )
    return EXIT_FAILED


def entry() -> None:
    hardening.harden()  # from "/", sanitized environment: before anything loads a library
    exit_now(main())


def _report(line: str) -> None:
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except OSError:
        pass  # stderr on a full disk too: nowhere left to say it


def exit_now(code: int) -> None:
    """Exit without Python's teardown of every module and object (~6-8 ms of a 70 ms `counters`
    on a loaded machine, more after `ps`; the kernel frees a process at once), once nothing can
    still be pending: stdout and stderr flushed here, no other thread running (a normal exit
    waits for it) and no exit handler registered (a library's cleanup); otherwise the normal
    exit. Files netjail writes are closed (and fsync'ed) where they are written."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `netjail ps | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:  # a full disk, EIO: the output is lost, and the command says so
        # (it was a traceback and exit 120, Python's code for a failed flush at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _report(f"netjail: cannot write the output: {exc.strerror}\n")
        code = code or EXIT_FAILED
    _report("")
    threading = sys.modules.get("threading")
    if (threading is not None and threading.active_count() > 1) or atexit._ncallbacks():
        raise SystemExit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
