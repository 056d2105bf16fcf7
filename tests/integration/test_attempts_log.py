"""The attempts collector against the real kernel: NFLOG copies of packets real processes send,
read from the group, written to the SQLite log, read back by `netjail attempts`."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dnslib
import pytest
from netjail.backends.attempts import prefix
from netjail.backends.attempts.collector import Collector
from netjail.backends.attempts.nflog import NflogGroup
from netjail.backends.attempts.store import AttemptLog

from tests.conftest import setpriv_as

# the log rules it writes itself are iptables' NFLOG target (the collector reads either backend's)
pytestmark = pytest.mark.backend("iptables")

# the senders need only the standard library: as nobody, the system interpreter (root's venv
# interpreter may sit under a home directory nobody cannot enter)
STDLIB_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
GROUP = 5771  # not the default: a watcher of another test file's jail never holds it


def _rules(ipt: str, dest: str, tag: str, action: str = "-A") -> None:
    for rule in (
        [
            "-p",
            "udp",
            "-m",
            "limit",
            "--limit",
            prefix.RATE,
            "--limit-burst",
            str(prefix.BURST),
            "-j",
            "NFLOG",
            "--nflog-prefix",
            tag,
            "--nflog-group",
            str(GROUP),
            "--nflog-size",
            str(prefix.SNAPLEN),
        ],
        ["-p", "udp", "-j", "DROP"],
    ):
        subprocess.run([ipt, action, "OUTPUT", "-d", dest, *rule], check=True)


@pytest.fixture
def logged(state_dir: Path) -> Iterator[Callable[[], Collector]]:
    """A collector on GROUP in a thread, and log rules for 10.77.0.9 and fd77::9 on loopback."""
    subprocess.run(["ip", "addr", "add", "10.77.0.9/32", "dev", "lo"], check=True)
    subprocess.run(["ip", "addr", "add", "fd77::9/128", "dev", "lo", "nodad"], check=True)
    _rules("iptables-legacy", "10.77.0.9", prefix.make("out", "tj"))
    _rules("ip6tables-legacy", "fd77::9", prefix.make("out", "tj"))
    running: list[tuple[Collector, threading.Event, threading.Thread]] = []

    def start() -> Collector:
        c = Collector(state_dir, group=GROUP)
        stop = threading.Event()
        t = threading.Thread(target=c.run, args=(stop,), daemon=True)
        t.start()
        running.append((c, stop, t))
        return c

    yield start
    for c, stop, t in running:
        stop.set()
        t.join(5)
        if not t.is_alive():
            c.close()
    _rules("iptables-legacy", "10.77.0.9", prefix.make("out", "tj"), "-D")
    _rules("ip6tables-legacy", "fd77::9", prefix.make("out", "tj"), "-D")
    subprocess.run(["ip", "addr", "del", "10.77.0.9/32", "dev", "lo"], check=False)
    subprocess.run(["ip", "addr", "del", "fd77::9/128", "dev", "lo"], check=False)


SENDER = """
import socket, sys
q = bytes.fromhex(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sent = {"dns": 0, "v4": 0, "v6": 0}
for _ in range(3):
    try: s4.sendto(q, ("10.77.0.9", 53)); sent["dns"] += 1
    except OSError: pass
for _ in range(7):
    try: s4.sendto(b"x" * 50, ("10.77.0.9", 4444)); sent["v4"] += 1
    except OSError: pass
for _ in range(5):
    try: s6.sendto(b"y" * 10, ("fd77::9", 5555)); sent["v6"] += 1
    except OSError: pass
print(sent)
"""


def _wait_rows(log_dir: Path, want: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        log = AttemptLog(log_dir, create=False)
        try:
            rows = log.attempts()
        finally:
            log.close()
        if sum(r.count for r in rows) >= want or time.monotonic() > deadline:
            return [{"remote": r.remote, "port": r.port, "count": r.count, "name": r.name} for r in rows]
        time.sleep(0.1)


def test_a_real_senders_dropped_packets_are_logged_with_its_dns_name(
    logged: Callable[[], Collector], state_dir: Path, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    logged()
    query = dnslib.DNSRecord.question("telemetry.example.com", "A").pack().hex()
    argv = [*setpriv_as("nobody"), STDLIB_PYTHON, "-c", SENDER, query]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    sent = ast.literal_eval(out.stdout)
    assert sent == {"dns": 0, "v4": 0, "v6": 0}  # every send was refused: EPERM from the DROP
    # ... yet each attempt reached the log: the copy is taken before the drop
    rows = _wait_rows(state_dir, 15)
    got = {(r["remote"], r["port"]): (r["count"], r["name"]) for r in rows}
    assert got == {
        ("10.77.0.9", 53): (3, "telemetry.example.com"),
        ("10.77.0.9", 4444): (7, None),
        ("fd77::9", 5555): (5, None),
    }
    res = cli("attempts", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert {(a["remote"], a["port"], a["count"], a["uid"]) for a in doc["attempts"]} == {
        ("10.77.0.9", 53, 3, 65534),
        ("10.77.0.9", 4444, 7, 65534),
        ("fd77::9", 5555, 5, 65534),
    }
    assert doc["names"][0]["name"] == "telemetry.example.com" and doc["names"][0]["qtype"] == "A"
    text = cli("attempts", "--jail", "tj")
    assert "tried to resolve telemetry.example.com (A)" in text.stdout
    assert cli("attempts", "--jail", "other", "--json").stdout.strip() == '{"attempts":[],"names":[]}'


FLOOD = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, end = 0, time.monotonic() + 2.0
while time.monotonic() < end:
    try: s.sendto(b"z", ("10.77.0.9", 7777))
    except OSError: pass
    n += 1
print(n)
"""


def test_a_flood_reaches_the_log_only_at_the_rate_limit(
    logged: Callable[[], Collector], state_dir: Path
) -> None:
    c = logged()
    cpu0 = time.process_time()
    flood = subprocess.run([sys.executable, "-c", FLOOD], capture_output=True, text=True, check=True)
    offered = int(flood.stdout)
    time.sleep(0.6)
    rows = _wait_rows(state_dir, 1)
    logged_count = sum(r["count"] for r in rows)
    assert offered > 20_000  # a flood indeed
    # burst + 2 s at the rate, with slack for the limit's refill granularity
    assert prefix.BURST <= logged_count <= prefix.BURST + 2.5 * 200, (offered, logged_count)
    assert c.reader.lost == 0
    assert time.process_time() - cpu0 < 1.0  # this whole process, collector thread included


COLLECTOR = """
import sys, threading
from pathlib import Path
from netjail.backends.attempts.collector import Collector
c = Collector(Path(sys.argv[1]), group=int(sys.argv[2]))
print("ready", flush=True)
c.run(threading.Event())
"""


def test_one_collector_per_group_and_a_killed_one_loses_at_most_its_batch(
    state_dir: Path, logged: object
) -> None:
    def spawn() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", COLLECTOR, str(state_dir), str(GROUP)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    first = spawn()
    try:
        with pytest.raises(OSError):  # the group has one reader per namespace: a second is refused
            NflogGroup(GROUP, snaplen=64)
        subprocess.run([sys.executable, "-c", SENDER, "00"], capture_output=True, check=True)
        assert sum(r["count"] for r in _wait_rows(state_dir, 15)) == 15
    finally:
        first.kill()  # SIGKILL: no flush, no unbind; the kernel drops the socket
        first.wait()
    second = spawn()
    try:
        subprocess.run([sys.executable, "-c", SENDER, "00"], capture_output=True, check=True)
        assert sum(r["count"] for r in _wait_rows(state_dir, 30)) == 30
    finally:
        second.kill()
        second.wait()
    log = AttemptLog(state_dir, create=False)
    try:
        assert log.db is not None and log.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        log.close()


def test_a_collector_waits_for_a_held_group_and_takes_it_when_let_go(
    logged: object, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two state directories in one namespace (or a watcher still exiting) want the one group:
    the later collector keeps asking instead of giving up for the watcher's whole life."""
    from netjail.backends.attempts import collector

    monkeypatch.setenv(prefix.GROUP_ENV, str(GROUP))
    holder = NflogGroup(GROUP, snaplen=64)
    stop, thread = collector.start(state_dir)
    try:
        time.sleep(1.5)  # it tried and was refused at least once
        holder.close()
        time.sleep(collector.RETRY_SECONDS + 0.5)
        subprocess.run([sys.executable, "-c", SENDER, "00"], capture_output=True, check=True)
        assert sum(r["count"] for r in _wait_rows(state_dir, 15)) == 15
    finally:
        stop.set()
        thread.join(5)


RESOLVER = "10.77.0.53"
RESOLVING = """
import socket, sys
q = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (sys.argv[2], 53))  # allowed: the resolver is not jailed away
answer, _ = s.recvfrom(512)
address = socket.inet_ntoa(answer[-4:])  # the one A record's data ends the answer
for _ in range(3):
    try: s.sendto(b"t" * 20, (address, 4444))
    except OSError: pass
print(address)
"""


@pytest.fixture
def resolver() -> Iterator[None]:
    """A DNS server on RESOLVER (dnslib answers every A question with 10.77.0.9), and the copy
    of its answers the collector reads as the jail's lane `a` (prefix.py)."""
    subprocess.run(["ip", "addr", "add", f"{RESOLVER}/32", "dev", "lo"], check=True)
    answer_rule = ["INPUT", "-s", RESOLVER, "-p", "udp", "--sport", "53", "-j", "NFLOG"]
    answer_rule += ["--nflog-group", str(GROUP), "--nflog-size", str(prefix.SNAPLEN)]
    answer_rule += ["--nflog-prefix", prefix.make("answer", "tj")]
    subprocess.run(["iptables-legacy", "-A", *answer_rule], check=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((RESOLVER, 53))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            question = dnslib.DNSRecord.parse(data)
            reply = question.reply()
            reply.add_answer(dnslib.RR(question.q.qname, dnslib.QTYPE.A, rdata=dnslib.A("10.77.0.9"), ttl=60))
            sock.sendto(reply.pack(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(2)
    sock.close()
    subprocess.run(["iptables-legacy", "-D", *answer_rule], check=False)
    subprocess.run(["ip", "addr", "del", f"{RESOLVER}/32", "dev", "lo"], check=False)


def test_an_attempt_to_an_address_an_answer_mapped_is_named_by_that_answer(
    logged: Callable[[], Collector],
    resolver: None,
    state_dir: Path,
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    logged()
    query = dnslib.DNSRecord.question("telemetry.example.com", "A").pack().hex()
    out = subprocess.run(
        [*setpriv_as("nobody"), STDLIB_PYTHON, "-c", RESOLVING, query, RESOLVER],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "10.77.0.9"  # the program used the answer
    _wait_rows(state_dir, 3)
    subprocess.run([sys.executable, "-c", SENDER, "00"], capture_output=True, check=True)  # port 53, 5555
    _wait_rows(state_dir, 3 + 15)
    doc = json.loads(cli("attempts", "--json").stdout)
    got = {(a["remote"], a["port"]): (a["name"], a["name_from"]) for a in doc["attempts"]}
    assert got[("10.77.0.9", 4444)] == ("telemetry.example.com", "answer")
    assert got[("10.77.0.9", 53)] == ("telemetry.example.com", "answer")  # an address, any port
    assert got[("fd77::9", 5555)] == (None, None)  # no answer mapped it
    assert all(a["direction"] != "answer" for a in doc["attempts"])  # an answer is no attempt
