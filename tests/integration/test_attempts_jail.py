"""The attempts log of real jails: what a blocked program tried, read back with `netjail
attempts`, gone with the jail (or kept with --keep-log). The collector is the watcher's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netjail.backends.attempts import prefix
from netjail.backends.jails.watcher import running

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


# Started first, jailed, then told to flood: 100,000 packets a second offered (paced in 1 ms
# steps), every send counted by the sender itself
FLOOD = """
import socket, sys, time
dest, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))  # a socket the block finds (an unbound one has no port to be found by)
print("ready", flush=True)
while sys.stdin.readline() == "probe\\n":  # the collector is up and logging this jail
    try: s.sendto(b"p", (dest, 7001))
    except OSError: pass
sent, start = 0, time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = int(now * rate)
    while sent < due:
        try: s.sendto(b"f" * 16, (dest, 7000))
        except OSError: pass
        sent += 1
print(sent, time.monotonic() - start, flush=True)
"""


def _cpu_seconds(pid: int) -> float:
    """Time on CPU of every thread of `pid` (schedstat, ns; not wall time)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def test_a_jailed_flood_is_logged_at_the_rate_limit_and_costs_the_watcher_little(
    cli: CLI, make_host: Callable[[], Host], state_dir: Path
) -> None:
    host = make_host()
    rate, seconds = 100_000, 3.0
    sender = subprocess.Popen(
        [sys.executable, "-c", FLOOD, host.addr4, str(rate), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sender.stdin is not None and sender.stdout is not None
    try:
        assert sender.stdout.readline() == "ready\n"
        block(cli, sender.pid, "--jail", "attf")
        # the watcher's start-up and its collector's bind are not the flood's cost: probes until
        # one is logged (a copy sent before the collector binds is lost)
        for _ in range(40):
            sender.stdin.write("probe\n")
            sender.stdin.flush()
            if any(a["port"] == 7001 for a in attempts(cli, "--jail", "attf")["attempts"]):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("no probe was logged")
        time.sleep(0.5)
        watcher = running(state_dir)
        assert watcher is not None
        cpu0 = _cpu_seconds(watcher)
        sender.stdin.write("go\n")
        sender.stdin.flush()
        sent_text, took_text = sender.stdout.readline().split()
        sent, took = int(sent_text), float(took_text)
        time.sleep(1.0)  # the kernel's flush timeout and one write
        cpu = _cpu_seconds(watcher) - cpu0
        # read while the sender lives: a jail whose last member died goes, and its log with it
        rows = wait_attempts(cli, lambda r: any(a["port"] == 7000 for a in r), "--jail", "attf")
    finally:
        sender.kill()
        sender.wait()
    assert sent >= 0.8 * rate * seconds, (sent, took)  # 100k/s offered, indeed
    flooded = [r for r in rows if (r["remote"], r["port"]) == (host.addr4, 7000)]
    assert len(rows) == 2 and len(flooded) == 1, rows  # the probe's row and the flood's one
    # the jail's own log rule passed its burst and then its rate, whatever was offered
    limit = int(prefix.RATE.split("/")[0])
    assert prefix.BURST <= flooded[0]["count"] <= prefix.BURST + limit * (took + 0.5), (sent, flooded)
    # the watcher (reconciliation + collector) over the flood and the second after: its CPU
    # time, a generous ceiling (measured: 0.4-0.55 % of a CPU, on a loaded 2-CPU machine)
    assert cpu < 0.05 * (took + 1.0), cpu


def test_each_attempt_names_the_member_that_sent_it_where_the_kernel_says(
    cli: CLI, spawn_peer: Callable[..., Peer], make_host: Callable[[], Host]
) -> None:
    """One member: that one. Two members of one uid: NFLOG's uid does not tell them apart, the
    socket of the packet's 5-tuple (sock_diag) and the fds that hold it do."""
    host = make_host()
    first = spawn_peer("udp-send", host.addr4, 9101, interval=0.05, user="nobody")
    block(cli, first.pid, "--jail", "attp")
    rows = wait_attempts(cli, lambda r: any(a["port"] == 9101 for a in r), "--jail", "attp")
    one = next(a for a in rows if a["port"] == 9101)
    assert (one["pid"], one["pid_from"]) == (first.pid, "only member"), one
    second = spawn_peer("udp-send", host.addr4, 9102, interval=0.05, user="nobody")
    block(cli, second.pid, "--jail", "attp")
    rows = wait_attempts(cli, lambda r: any(a["port"] == 9102 for a in r), "--jail", "attp")
    two = next(a for a in rows if a["port"] == 9102)
    assert two["uid"] == 65534 and (two["pid"], two["pid_from"]) == (second.pid, "socket"), two
    again = next(a for a in rows if a["port"] == 9101)
    assert again["pid"] == first.pid  # the row keeps its sender
