"""A jail holds exactly its members' sockets, both ways, whatever shares their addresses.

Every socket a member holds carries the jail's mark (socket_marks); going out, one rule per
jail matches it, coming in, the packet takes the mark of the socket it is for
(`--restore-skmark`, firewall/lanes.py). Neither depends on ports: a SO_REUSEPORT peer on the
same port stays untouched, and the rules loaded do not grow with the sockets held.
"""

from __future__ import annotations

import collections
import contextlib
import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import firewall_probe
from tests.conftest import Peer
from tests.integration.test_block import CLI
from tests.integration.test_block_marks import block, sock_mark, unblock

PROBE = Path(__file__).with_name("exact_probe.py")


@pytest.fixture
def probe(spawn_script: Callable[..., Peer]) -> Callable[..., Peer]:
    return lambda *args: spawn_script(PROBE, *args)


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(kind: int, host: str = "127.0.0.1") -> int:
    with socket.socket(family(host), kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def udp_answers(host: str, port: int, n: int = 120, wait: float = 1.5) -> collections.Counter[int]:
    """Datagrams from n fresh source ports (SO_REUSEPORT spreads them by 4-tuple hash): how
    many answers came back from each PID."""
    socks = [socket.socket(family(host), socket.SOCK_DGRAM) for _ in range(n)]
    got: collections.Counter[int] = collections.Counter()
    try:
        for s in socks:
            s.setblocking(False)
            s.sendto(b"ping", (host, port))
        pending = set(socks)
        end = time.monotonic() + wait
        while pending and time.monotonic() < end:
            ready, _, _ = select.select(list(pending), [], [], 0.1)
            for s in ready:
                got[int(s.recv(100).split()[0])] += 1
                pending.discard(s)
    finally:
        for s in socks:
            s.close()
    return got


def tcp_greetings(host: str, port: int, n: int = 60, wait: float = 1.5) -> collections.Counter[int]:
    """n connections at once: how many got the greeting (the PID) of each listener."""
    socks = [socket.socket(family(host)) for _ in range(n)]
    got: collections.Counter[int] = collections.Counter()
    try:
        for s in socks:
            s.setblocking(False)
            s.connect_ex((host, port))
        pending = set(socks)
        end = time.monotonic() + wait
        while pending and time.monotonic() < end:
            ready, _, _ = select.select(list(pending), [], [], 0.1)
            for s in ready:
                try:
                    data = s.recv(100)
                except OSError:
                    data = b""
                if data:
                    got[int(data.split()[0])] += 1
                pending.discard(s)
    finally:
        for s in socks:
            s.close()
    return got


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_reuseport_peer_keeps_its_traffic(cli: CLI, probe: Callable[..., Peer], kind: str, host: str) -> None:
    port = free_port(socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM, host)
    jailed, other = (
        probe(f"reuseport-{kind}", host, port),
        probe(f"reuseport-{kind}", host, port),
    )
    ask = udp_answers if kind == "udp" else tcp_greetings
    before = ask(host, port)
    assert before[jailed.pid] > 0 and before[other.pid] > 0, before  # the kernel spreads them
    block(cli, jailed.pid, f"rp{kind}{int(family(host))}")
    during = ask(host, port)
    assert during[jailed.pid] == 0, during
    # the peer on the same port is untouched, in and out; its share is roughly half
    assert during[other.pid] >= 10 and set(during) == {other.pid}, during
    unblock(cli, jailed.pid)
    after = ask(host, port)
    assert after[jailed.pid] > 0 and after[other.pid] > 0, after


class Counterpart:
    """The test's end of the probe's flow (TCP) and of its connected UDP socket: counts what
    arrives, and sends something back every 50 ms."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.counts: collections.Counter[str] = collections.Counter()
        self.stopped = threading.Event()  # no traffic may outlive the test: later ones count
        threading.Thread(target=self._tcp, daemon=True).start()
        threading.Thread(target=self._udp, daemon=True).start()

    def _tcp(self) -> None:
        conn, _ = self.tcp.accept()
        conn.settimeout(0.05)
        while not self.stopped.is_set():
            try:
                if conn.recv(100):
                    self.counts["flow"] += 1
            except TimeoutError:
                pass
            except OSError:
                return
            try:
                conn.send(b"y\n")
            except OSError:
                return  # the probe is gone

    def _udp(self) -> None:
        self.udp.settimeout(0.05)
        peer = None
        while not self.stopped.is_set():
            try:
                _, peer = self.udp.recvfrom(100)
                self.counts["connected"] += 1
            except TimeoutError:
                pass
            if peer is not None:
                self.udp.sendto(b"y", peer)

    def stop(self) -> None:
        self.stopped.set()
        time.sleep(0.1)  # both loops see it within one 50 ms timeout
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def side() -> Iterator[Counterpart]:
    counterpart = Counterpart()
    yield counterpart
    counterpart.stop()


def reaches(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(0.7)
        try:
            if kind == socket.SOCK_STREAM:
                s.connect(("127.0.0.1", port))
                return True
            s.sendto(b"hello", ("127.0.0.1", port))
            return bool(s.recv(100))
        except OSError:
            return False


def moving(peer: Peer, side: Counterpart, seconds: float = 1.0, until_all: bool = False) -> dict[str, bool]:
    """Which of the probe's sockets saw traffic in, and which of its sends arrived, within
    `seconds` (`until_all`: as soon as every one did)."""
    keys = ("flow", "connected")
    before_in = {k: peer.value(k) for k in keys}
    before_out = {k: side.counts[k] for k in keys}
    end = time.monotonic() + seconds
    while True:
        time.sleep(0.05)
        out = {f"{k} in": peer.value(k) > before_in[k] for k in keys}
        out.update({f"{k} out": side.counts[k] > before_out[k] for k in keys})
        if time.monotonic() > end or (until_all and all(out.values())):
            return out


def test_every_kind_of_socket_is_cut_both_ways_and_restored(
    cli: CLI, probe: Callable[..., Peer], side: Counterpart
) -> None:
    member = probe("many", "127.0.0.1", side.tcp.getsockname()[1], side.udp.getsockname()[1])
    ports, fds = member.info["ports"], member.info["fds"]
    assert isinstance(ports, dict) and isinstance(fds, dict)
    tcp_ports = (ports["wild"], ports["specific"])
    assert all(moving(member, side, 10.0, until_all=True).values())
    assert all(reaches(p, socket.SOCK_STREAM) for p in tcp_ports)
    assert reaches(ports["unconnected"], socket.SOCK_DGRAM)

    block(cli, member.pid, "many")
    marks = {k: sock_mark(member.pid, fd) for k, fd in fds.items()}
    assert len(set(marks.values())) == 1 and 0 not in marks.values(), marks  # the jail's one mark
    time.sleep(0.3)  # what was on its way
    assert not any(moving(member, side).values())
    assert not any(reaches(p, socket.SOCK_STREAM) for p in tcp_ports)
    assert not reaches(ports["unconnected"], socket.SOCK_DGRAM)

    unblock(cli, member.pid)
    assert {k: sock_mark(member.pid, fd) for k, fd in fds.items()} == dict.fromkeys(fds, 0)
    # TCP retransmits what waited, after a backoff that doubled during the block
    assert all(moving(member, side, 15.0, until_all=True).values())
    assert all(reaches(p, socket.SOCK_STREAM) for p in tcp_ports)
    assert reaches(ports["unconnected"], socket.SOCK_DGRAM)


def test_rules_loaded_do_not_grow_with_the_sockets_held(cli: CLI, probe: Callable[..., Peer]) -> None:
    counts = []
    for n in (5, 300):
        server = probe("reuseport-tcp", "127.0.0.1", free_port(socket.SOCK_STREAM))
        clients = [socket.create_connection(("127.0.0.1", int(server.info["port"]))) for _ in range(n)]  # type: ignore[call-overload]
        try:
            assert server.wait_for(lambda c, n=n: int(c.get("accepted", 0)) >= n, 20)  # type: ignore[misc]
            block(cli, server.pid, f"grow{n}")
            counts.append(firewall_probe.rule_count())
            unblock(cli, server.pid)
        finally:
            for c in clients:
                c.close()
    assert counts[0] == counts[1], counts
    assert counts[1] <= 40, firewall_probe.kernel_text()  # a few per jail and family


RAW_SENDER = """
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)  # IP protocol 253: no ports at all
print('READY {"pid": %d}' % os.getpid(), flush=True)
while True:
    try:
        s.sendto(b"raw", ("127.0.0.1", 0))
    except OSError:
        pass  # EPERM while jailed
    time.sleep(0.02)
"""


def test_a_raw_socket_sender_stops_and_resumes(cli: CLI) -> None:
    """A raw socket made before the block (IP protocol 253, no ports, nothing sock_diag lists)
    is cut by its mark; counted by a raw receiver here."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)
    rx.settimeout(0.05)
    proc = subprocess.Popen([sys.executable, "-c", RAW_SENDER], stdout=subprocess.PIPE, text=True)
    sender = Peer(proc)
    threading.Thread(target=sender._read, daemon=True).start()

    def received(seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                n += rx.recv(100).endswith(b"raw")
        return n

    try:
        sender.wait_ready()
        assert received(0.5) > 5
        block(cli, proc.pid, "raw")
        received(0.2)  # in flight
        assert received(1.0) == 0
        unblock(cli, proc.pid)
        assert received(1.0) > 5
    finally:
        proc.kill()
        proc.wait()
        rx.close()


def test_a_connected_socket_opened_inside_the_jail_receives_nothing_at_once(
    cli: CLI, probe: Callable[..., Peer]
) -> None:
    """Opened after the block, so its cgroup is the jail's; coming in, no watcher period may pass
    before it is cut: early demux hands INPUT its socket, and the INPUT cgroup lane matches it
    (attack review: 250 of 250 datagrams arrived before)."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    member = probe("late-udp", "127.0.0.1", peer.getsockname()[1])
    try:
        block(cli, member.pid, "lateudp")
        member.proc.send_signal(10)
        assert member.wait_for(lambda c: any(k.startswith("port=") for k in c), 10), member.lines[-3:]
        port = int(next(k for k in member.latest if k.startswith("port="))[5:])
        for _ in range(100):
            peer.sendto(b"x", ("127.0.0.1", port))
        time.sleep(0.5)
        assert member.value("received") == 0
    finally:
        peer.close()


def test_a_jailed_sender_over_loopback_does_not_open_another_jail(
    cli: CLI, probe: Callable[..., Peer], spawn_peer: Callable[..., Peer]
) -> None:
    """A packet over lo keeps its sender socket's mark: jail A (allowed 127.0.0.1) sending to a
    socket of jail B (allowed nothing) is still B's to drop, and B counts it (attack review:
    100 of 100 arrived, 0 counted)."""
    port = free_port(socket.SOCK_DGRAM)
    receiver = probe("reuseport-udp", "127.0.0.1", port)
    sender = spawn_peer("udp-send", "127.0.0.1", port, interval=0.01)
    block(cli, receiver.pid, "loopb")
    out = cli("block", str(sender.pid), "--jail", "loopa", "--allow", "127.0.0.1/32")
    assert out.returncode == 0, out.stderr
    time.sleep(0.3)
    before = receiver.value("received")
    time.sleep(1.0)
    assert receiver.value("received") == before
    counters = json.loads(cli("counters", "--json").stdout)
    b = next(j for j in counters if j["jail"] == "loopb")
    assert b["inet"]["dropped_packets"] >= 20, b
