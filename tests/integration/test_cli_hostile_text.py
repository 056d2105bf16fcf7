"""Issue 8 finding 4 for the CLI: a local user's processes named and called with terminal escape
sequences, markup and bytes that are not UTF-8 reach root's terminal only escaped; `--json`
keeps the values (as strict JSON). Real processes (as nobody), the real CLI, raw bytes read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from netjail.widgets.safe_text import printable

from tests.conftest import Peer
from tests.hostile import (
    HIDE_REST,
    MARKUP_NAME,
    NOT_UTF8_ARG,
    NOT_UTF8_NAME,
    OSC52_NAME,
    TITLE_AND_CURSOR,
    assert_terminal_safe,
)

Spawn = Callable[..., Peer]


def netjail(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The real CLI, stdout and stderr as the bytes a terminal would get."""
    return subprocess.run([sys.executable, "-m", "netjail.app.cli", *args], capture_output=True, timeout=60)


NAMES = {"markup": MARKUP_NAME, "osc": OSC52_NAME, "bytes": NOT_UTF8_NAME}
SHOWN = {"markup": MARKUP_NAME, "osc": "\\x1b]52;c;SGVsbG8=\\x07", "bytes": "bad\\xffname"}


def hostile_peers(spawn_peer: Spawn) -> dict[str, Peer]:
    return {
        "markup": spawn_peer("named", MARKUP_NAME, HIDE_REST, user="nobody"),
        "osc": spawn_peer("named", OSC52_NAME, TITLE_AND_CURSOR, HIDE_REST, user="nobody"),
        "bytes": spawn_peer("named", NOT_UTF8_NAME, NOT_UTF8_ARG, user="nobody"),
    }


def row_of(stdout: bytes, pid: int) -> str:
    (line,) = [r for r in stdout.decode().splitlines() if r.split()[:1] == [str(pid)]]
    return line


def test_ps_table_shows_hostile_names_escaped_never_raw(spawn_peer: Spawn) -> None:
    peers = hostile_peers(spawn_peer)
    out = netjail("ps")
    assert out.returncode == 0, out.stderr  # before: a name that is not UTF-8 crashed every ps
    assert b"\x1b" not in out.stdout and b"\x07" not in out.stdout
    assert_terminal_safe(out.stdout, "ps")
    assert_terminal_safe(out.stderr, "ps stderr")
    for key, peer in peers.items():
        assert row_of(out.stdout, peer.pid).split()[1:3] == ["nobody", SHOWN[key]]
        one = netjail("ps", "--pid", str(peer.pid))  # the same row alone
        assert one.returncode == 0 and row_of(one.stdout, peer.pid).split()[1:3] == ["nobody", SHOWN[key]]
    found = netjail("ps", "--filter", "PWNED")  # the filter reads the raw cmdline
    assert found.returncode == 0
    assert [r.split()[0] for r in found.stdout.decode().splitlines()[1:]] == [str(peers["osc"].pid)]


def test_ps_json_keeps_the_raw_values_as_strict_json(spawn_peer: Spawn) -> None:
    peers = hostile_peers(spawn_peer)
    out = netjail("ps", "--json")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode("ascii")  # json escapes every control character itself
    assert not re.search(r"\\u[dD][89a-fA-F]", text), "a lone surrogate: strict JSON parsers refuse it"
    data: list[dict[str, Any]] = json.loads(text)
    by_pid = {p["pid"]: p for p in data}

    osc = by_pid[peers["osc"].pid]
    assert osc["name"] == OSC52_NAME
    assert osc["cmdline"][0] == OSC52_NAME and {TITLE_AND_CURSOR, HIDE_REST} <= set(osc["cmdline"])
    assert by_pid[peers["markup"].pid]["name"] == MARKUP_NAME
    not_utf8 = by_pid[peers["bytes"].pid]
    assert not_utf8["name"] == "bad\ufffdname" and "arg\ufffd" in not_utf8["cmdline"]
    assert not_utf8["user"] == "nobody"


def test_block_unblock_and_list_messages_are_escaped(spawn_peer: Spawn) -> None:
    peers = hostile_peers(spawn_peer)
    for key, peer in peers.items():
        blocked = netjail("block", str(peer.pid), "--jail", f"h{peer.pid}")
        assert blocked.returncode == 0, blocked.stderr
        assert_terminal_safe(blocked.stdout + blocked.stderr, "block")
        comm = printable(NAMES[key][:15])  # a member is named by its comm: 15 bytes at most
        assert blocked.stdout.decode().startswith(f"blocked {peer.pid} ({comm}) in jail h{peer.pid}")
    listed = netjail("list")
    assert listed.returncode == 0 and all(f"h{p.pid}" in listed.stdout.decode() for p in peers.values())
    assert_terminal_safe(listed.stdout + listed.stderr, "list")
    released = netjail("unblock", "--all")
    assert released.returncode == 0
    assert_terminal_safe(released.stdout + released.stderr, "unblock")


def test_one_line_errors_on_stderr_are_escaped() -> None:
    out = netjail("run", "--seccomp", "--user", "nobody", "--", f"/nonexistent/{TITLE_AND_CURSOR}")
    assert out.returncode == 2 and out.stdout == b""
    assert_terminal_safe(out.stderr, "stderr")
    assert out.stderr.decode() == f"netjail: command not found: /nonexistent/{printable(TITLE_AND_CURSOR)}\n"
