"""The attempts log of real jails: what a blocked program tried, read back with `netjail
attempts`, gone with the jail (or kept with --keep-log). The collector is the watcher's."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import Host, Peer
from tests.integration.test_block import block

CLI = Callable[..., subprocess.CompletedProcess[str]]


def attempts(cli: CLI, *args: str) -> dict[str, Any]:
    out = cli("attempts", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_attempts(cli: CLI, pred: Callable[[list[dict[str, Any]]], bool], *args: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        rows = attempts(cli, *args)["attempts"]
        if pred(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_a_blocked_senders_destinations_are_logged_and_go_with_the_jail(
    cli: CLI, spawn_peer: Callable[..., Peer], make_host: Callable[[], Host]
) -> None:
    host = make_host()
    v4 = spawn_peer("udp-send", host.addr4, 9001, interval=0.05, user="nobody")
    out = block(cli, v4.pid, "--jail", "att4")
    assert out["jail"] == "att4"
    rows = wait_attempts(cli, lambda r: any(a["count"] >= 20 for a in r), "--jail", "att4")
    tried = [a for a in rows if (a["remote"], a["port"], a["proto"]) == (host.addr4, 9001, "udp")]
    assert tried, rows
    assert tried[0]["direction"] == "out" and tried[0]["kind"] == "udp" and tried[0]["uid"] == 65534
    assert tried[0]["first"] <= tried[0]["last"]
    # each drop the sender saw (EPERM) is one attempt: compared with its own count, read before
    # and after the log (the collector writes every 0.5 s: up to ~15 sends in between)
    seen_before = v4.value("errors")
    logged = next(
        a["count"] for a in attempts(cli, "--jail", "att4")["attempts"] if a["remote"] == host.addr4
    )
    time.sleep(0.2)
    seen_after = v4.value("errors")
    assert seen_before - 20 <= logged <= seen_after + 1, (seen_before, logged, seen_after)
    text = cli("attempts", "--pid", str(v4.pid))
    assert host.addr4 in text.stdout and "9001" in text.stdout
    assert cli("unblock", "--jail", "att4").returncode == 0
    assert attempts(cli, "--jail", "att4")["attempts"] == []  # gone with the jail


def test_keep_log_keeps_a_removed_jails_attempts(
    cli: CLI, spawn_peer: Callable[..., Peer], make_host: Callable[[], Host]
) -> None:
    host = make_host()
    v6 = spawn_peer("udp-send", host.addr6, 9002, interval=0.05, user="nobody")
    block(cli, v6.pid, "--jail", "att6")
    rows = wait_attempts(cli, lambda r: any(a["remote"] == host.addr6 for a in r), "--jail", "att6")
    assert any(a["remote"] == host.addr6 and a["port"] == 9002 for a in rows), rows
    assert cli("unblock", "--jail", "att6", "--keep-log").returncode == 0
    kept = attempts(cli, "--jail", "att6")["attempts"]
    assert any(a["remote"] == host.addr6 for a in kept)


def test_a_connection_attempt_by_curl_is_logged_as_syn(cli: CLI, make_host: Callable[[], Host]) -> None:
    host = make_host()
    loop = subprocess.Popen(
        [
            "sh",
            "-c",
            f"while :; do curl -s -o /dev/null --max-time 0.3 http://{host.addr4}:8088/; sleep 0.1; done",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        block(cli, loop.pid, "--jail", "attc")
        rows = wait_attempts(cli, lambda r: any(a["kind"] == "syn" for a in r), "--jail", "attc")
        syn = [a for a in rows if a["kind"] == "syn"]
        assert syn and syn[0]["remote"] == host.addr4 and syn[0]["port"] == 8088 and syn[0]["proto"] == "tcp"
    finally:
        loop.kill()
        loop.wait()
