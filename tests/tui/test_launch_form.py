"""The launch dialog's field checks and the relaunch confirmation text (plain functions)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from netjail.app.screens.main import relaunch_question
from netjail.backends.model import LaunchRequest
from netjail.widgets.block_dialog import owner_scopes
from netjail.widgets.launch_form import (
    FieldError,
    check_executable,
    check_jail_name,
    check_user,
    default_jail_name,
    parse_command,
)

from tests.tui.fakes import PROCESSES


def test_command_is_split_like_a_shell_without_one() -> None:
    assert parse_command("curl -s 'https://a b' \"x y\" z\\ w") == ("curl", "-s", "https://a b", "x y", "z w")
    assert parse_command("echo $HOME; rm -rf /") == ("echo", "$HOME;", "rm", "-rf", "/")  # no shell


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "type the command"), ("   ", "type the command"), ("echo 'open", "no closing quotation")],
)
def test_bad_commands_are_named_in_one_line(text: str, error: str) -> None:
    with pytest.raises(FieldError, match=error) as info:
        parse_command(text)
    assert "\n" not in str(info.value)


def test_the_program_must_exist_and_be_executable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a program")
    data.chmod(0o644)
    check_executable(sys.executable)
    check_executable("sh")
    with pytest.raises(FieldError, match="command not found on PATH: no-such-program-x"):
        check_executable("no-such-program-x")
    with pytest.raises(FieldError, match="command not found: /nonexistent/x"):
        check_executable("/nonexistent/x")
    with pytest.raises(FieldError, match=f"not executable: {data}"):
        check_executable(str(data))


def test_user_and_jail_name_checks() -> None:
    assert check_user(" root ") == "root" and check_user("0") == "0"
    with pytest.raises(FieldError, match="no such user: 'no-such-user-x'"):
        check_user("no-such-user-x")
    with pytest.raises(FieldError, match="empty"):
        check_user("")
    assert check_jail_name("  ") is None
    assert check_jail_name("web_1.a-b") == "web_1.a-b"
    with pytest.raises(FieldError, match="bad jail name"):
        check_jail_name("-x")
    with pytest.raises(FieldError, match="bad jail name"):
        check_jail_name("x" * 24)


def test_default_jail_names_are_free_and_short_enough() -> None:
    assert default_jail_name("/usr/bin/curl", set()) == "curl-1"
    assert default_jail_name("curl", {"curl-1", "curl-2"}) == "curl-3"
    assert default_jail_name("./.hidden prog", ()) == "hidden_prog-1"
    long = default_jail_name("a" * 40, {"a" * 21 + "-1"})
    assert long == "a" * 21 + "-2" and check_jail_name(long) == long


def test_owner_scopes_name_the_user_and_group() -> None:
    curl = next(p for p in PROCESSES if p.pid == 2301)
    assert [key for key, _ in owner_scopes(curl)] == ["user", "group"]
    assert owner_scopes(curl)[0][1].startswith("user alice (uid 1000)")


def test_relaunch_confirmation_says_exactly_what_happens() -> None:
    curl = next(p for p in PROCESSES if p.pid == 2301)
    req = LaunchRequest(argv=curl.cmdline, strategy="netns", jail="curl-1", allow=("10.0.0.0/8",))
    log = Path("/run/netjail/net-4026531840/logs/curl-1.log")
    text = relaunch_question(curl, req, "/home/alice", log)
    assert text.startswith(
        "Terminate PID 2301 (curl), then start `curl -s https://updates.example.net/feed` in "
        "/home/alice as alice under netns (in a new network namespace, allowing only 10.0.0.0/8)"
    )
    assert "jail curl-1" in text
    assert text.endswith("; output goes to /run/netjail/net-4026531840/logs/curl-1.log.")  # not /dev/null
    seccomp = relaunch_question(curl, LaunchRequest(curl.cmdline, "seccomp", jail="c"), None, log)
    assert "in an unknown directory" in seccomp and "under seccomp (with network sockets refused" in seccomp
