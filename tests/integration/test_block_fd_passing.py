"""Issue 8 finding 5: a socket handed to a cgroup-jailed process over a unix socket.

The socket was created by an unjailed helper, so it carries the helper's cgroup and the jail's
`-m cgroup` rule never matches it (docs/kernel-facts.md #1). The watcher must give it a selector of its
own within one period: both sides run as `nobody`, and the receiver counts what arrives.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import firewall_probe
from tests.conftest import Peer
from tests.integration.test_block import CLI, rises, settle_count
from tests.integration.test_block_marks import sock_mark

PROBE = Path(__file__).with_name("fd_pass_probe.py")
WATCH = 1.0  # NETJAIL_WATCH_INTERVAL of these tests: the bound below is one period + margin


@pytest.fixture
def spawn_probe(spawn_script: Callable[..., Peer]) -> Callable[..., Peer]:
    return lambda *args: spawn_script(PROBE, *args)


@pytest.fixture
def rendezvous() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="netjail-fdpass-")
    Path(d).chmod(0o777)
    yield f"{d}/s"
    shutil.rmtree(d)


class ByteCounter:
    """A TCP listener on loopback counting every byte its clients send."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._count, args=(conn,), daemon=True).start()

    def _count(self, conn: socket.socket) -> None:
        while data := conn.recv(65536):
            self.received += len(data)


def jail_it(cli: CLI, pid: int, name: str) -> None:
    out = cli("block", str(pid), "--jail", name, env={"NETJAIL_WATCH_INTERVAL": str(WATCH)})
    assert out.returncode == 0, out.stderr


def selectors(jail: str) -> int:
    """The jail's outgoing selectors read back, both families (its cgroup rules and sockets')."""
    return firewall_probe.out_selectors(jail)


def wait_frozen(read: Callable[[], int], since: float) -> int:
    """The count once it stops moving; it must stop within one watcher period + margin."""
    deadline = since + WATCH + 2.0
    last, still = read(), time.monotonic()
    while time.monotonic() < deadline + 1.0:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= 1.0:
            assert still <= deadline, f"still sending {still - since:.1f}s after the hand-over"
            return now
    raise AssertionError(f"a socket handed over by SCM_RIGHTS still sends ({last})")


def test_tcp_socket_handed_to_a_jailed_process_is_cut(
    cli: CLI, spawn_probe: Callable[..., Peer], rendezvous: str
) -> None:
    counter = ByteCounter()
    member = spawn_probe("take", rendezvous)
    jail_it(cli, member.pid, "fdtcp")
    before = selectors("fdtcp")
    spawn_probe("give", rendezvous, "tcp", "127.0.0.1", counter.port)  # unjailed, same user
    member.proc.send_signal(10)  # SIGUSR1: fetch the socket and send through it
    handed = time.monotonic()
    assert member.wait_for(lambda c: int(c.get("sent", 0)) > 0, 5), member.lines[-3:]
    frozen = wait_frozen(lambda: counter.received, handed)
    time.sleep(WATCH + 0.5)
    assert counter.received == frozen, "bytes arrived after the watcher's period"
    assert rises(member, "sent", by=10), "the member should still be trying"  # (queued, unacked)
    # the handed socket carries the jail's mark (one rule per jail), not a rule of its own
    assert selectors("fdtcp") == before
    assert sock_mark(member.pid, int(member.info["placeholder"])) != 0  # type: ignore[call-overload]


def test_sockets_created_inside_the_jail_get_no_selector(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer]
) -> None:
    """The cgroup rule sees them: no per-socket rule, so no churn in the tables."""
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("fresh-udp", "127.0.0.1", recv.info["lport"])
    jail_it(cli, member.pid, "fresh")
    before = selectors("fresh")
    member.proc.send_signal(10)
    assert rises(member, "errors", by=10), "a socket created inside the jail still sends"
    time.sleep(2 * WATCH + 0.5)
    assert selectors("fresh") == before
    assert recv.value("received") == 0


def test_udp_socket_handed_to_a_jailed_process_is_cut(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer], rendezvous: str
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("take", rendezvous)
    jail_it(cli, member.pid, "fdudp")
    spawn_probe("give", rendezvous, "udp", "127.0.0.1", recv.info["lport"])
    member.proc.send_signal(10)
    handed = time.monotonic()
    assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) > 0, 5)
    wait_frozen(lambda: recv.value("received"), handed)
    frozen = settle_count(recv, "received")
    time.sleep(WATCH + 0.5)
    assert recv.value("received") == frozen
    assert rises(member, "errors", by=10), "sends through the handed socket should fail now"


def test_unbound_tcp_socket_handed_over_is_marked_before_it_connects(
    cli: CLI, spawn_probe: Callable[..., Peer], rendezvous: str
) -> None:
    """sock_diag does not list an unbound socket, so no address rule can be made for it: the
    watcher marks it within its period, and what it connects afterwards is dropped."""
    counter = ByteCounter()
    member = spawn_probe("take", rendezvous, "127.0.0.1", counter.port, WATCH + 1.5)
    jail_it(cli, member.pid, "fdunbound")
    spawn_probe("give", rendezvous, "tcp-unbound", "127.0.0.1", counter.port)
    member.proc.send_signal(10)
    assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) > 0, WATCH + 6)
    time.sleep(1.0)
    assert counter.received == 0, f"{counter.received} bytes through a handed-over unbound socket"
