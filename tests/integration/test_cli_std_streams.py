"""The operator's terminal as netjail finds it: stdout/stderr closed (`>&-`, a daemon with no
terminal) or on a full disk. The command does its work and its exit code says whether the
output got out; never a traceback, never an undocumented code (cli.exit_now,
hardening.open_std_streams)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from tests.conftest import Peer, python_for
from tests.integration.test_block import jails, rises, settle_count

CLI = Callable[..., subprocess.CompletedProcess[str]]


def netjail_with(
    closed: tuple[int, ...], *args: str, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI with fds `closed` shut before it starts (what `>&-` / `2>&-` leave)."""

    def close() -> None:
        for fd in closed:
            os.close(fd)

    return subprocess.run(
        [*python_for(None), "-m", "netjail.app.cli", *args],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE if 2 not in closed else None,
        text=True,
        timeout=60,
        preexec_fn=close,
    )


def test_block_with_stdout_closed_blocks(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    # before: python-iptables' os.dup(1) failed with EBADF, `block PID >&-` exited 1 with
    # "cannot encode rule ... 'NoneType' object has no attribute 'flush'" and the sender (a
    # process of nobody's) kept sending; then a traceback from exit_now
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"], user="nobody")
    assert rises(recv, "received")

    out = netjail_with((1,), "block", str(sender.pid), "--jail", "closed1")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert [j["name"] for j in jails(cli)] == ["closed1"]
    frozen = settle_count(recv, "received")
    assert not rises(recv, "received", by=1, timeout=1.5), "the sender's datagrams still arrive"
    assert recv.value("received") == frozen


def test_list_with_stdout_or_stderr_closed_exits_0() -> None:
    # before: sys.stdout / sys.stderr None, AttributeError in exit_now: exit 1 and a traceback
    # after the command had done its work
    for closed in ((1,), (2,), (1, 2)):
        out = netjail_with(closed, "list", "--json")
        assert out.returncode == 0, (closed, out.stderr)
        assert "Traceback" not in (out.stderr or "")


def test_output_on_a_full_disk_is_exit_1_and_one_line() -> None:
    for args in (("list",), ("list", "--json"), ("counters", "--json")):
        full_disk(*args)


def full_disk(*args: str) -> None:
    # before: OSError from the final flush: a traceback and exit 120 (Python's own code)
    with open("/dev/full", "w") as full:
        out = netjail_with((), *args, stdout=full.fileno())
    assert out.returncode == 1
    assert out.stderr in (
        "netjail: cannot write: No space left on device\n",  # a write in the command
        "netjail: cannot write the output: No space left on device\n",  # the flush at its end
    )


def test_a_broken_stderr_pipe_never_reports_a_block_that_did_not_happen(
    cli: CLI, spawn_peer: Callable[..., Peer]
) -> None:
    # `block --user U --yes --json` writes its preview to stderr before blocking: with that pipe
    # gone (its reader left) the BrokenPipeError was taken for `ps | head` and the command
    # exited 0 having blocked nothing; nobody's sender kept sending
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    spawn_peer("udp-send", "127.0.0.1", recv.info["lport"], user="nobody")
    assert rises(recv, "received")
    r, w = os.pipe()
    os.close(r)
    try:
        out = subprocess.run(
            [*python_for(None), "-m", "netjail.app.cli", "block", "--user", "nobody", "--yes", "--json"],
            stdout=subprocess.PIPE,
            stderr=w,
            text=True,
            timeout=60,
        )
    finally:
        os.close(w)
    try:
        blocked = [j["name"] for j in jails(cli)]
        still_sending = rises(recv, "received", by=5, timeout=2)
        state = "still" if still_sending else "no longer"
        assert out.returncode != 0 or (blocked and not still_sending), (
            f"exit {out.returncode}, jails {blocked}, the sender {state} sends"
        )
    finally:
        cli("reset")
