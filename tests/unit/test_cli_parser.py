"""The parser built for one command (app/cli.py: only that command's arguments are defined)
parses, helps and refuses exactly as the whole parser does."""

from __future__ import annotations

import contextlib
import io

import pytest
from netjail.app.cli import build_parser, runs_on

ARGVS = [
    ["ps", "--json"],
    ["-p", "ps", "--all", "--filter=-x"],
    ["counters", "--json", "--watch", "2", "-p"],
    ["list"],
    ["block", "123", "--tree", "--allow", "10.0.0.0/8:53", "--allow-loopback", "--json"],
    ["block", "--user", "alice", "--yes"],
    ["unblock", "--all"],
    ["run", "--netns", "--allow", "1.2.3.4", "--", "sh", "-c", "ps --json"],
    ["doctor", "--json"],
    ["reset"],
]


def outcome(parse_with: list[str] | None, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(build_parser(parse_with).parse_args(argv))
        except SystemExit as exc:
            result = exc.code
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_one_command_parses_as_the_whole_parser(argv: list[str]) -> None:
    assert outcome(argv, argv) == outcome(None, argv)
    assert isinstance(outcome(argv, argv)[0], dict)


@pytest.mark.parametrize(
    "argv",
    [["ps", "-h"], ["block", "--help"], ["block"], ["ps", "--bogus"], ["counters", "--watch", "0"],
     ["pss"], ["--bogus"], [], ["-p"], ["--help"], ["--version"]],
    ids=" ".join,
)  # fmt: skip
def test_help_and_refusals_are_those_of_the_whole_parser(argv: list[str]) -> None:
    assert outcome(argv, argv) == outcome(None, argv)


def test_a_parser_for_one_command_defines_only_it() -> None:
    sub = next(a for a in build_parser(["ps"])._actions if a.dest == "command")
    assert list(sub.choices) == ["ps"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "long"),
    [
        (["run", "--seccomp", "--", "sleep", "9"], True),
        (["counters", "--watch", "1"], True),
        (["counters", "--json"], False),
        (["ps", "--json"], False),
        (["list"], False),
        (["block", "123"], False),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_commands_that_run_on_keep_the_garbage_collector(argv: list[str], long: bool) -> None:
    assert runs_on(build_parser(argv).parse_args(argv)) is long
