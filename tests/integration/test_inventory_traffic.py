"""Per-process TCP send/receive rates from sock_diag's tcp_info, against a sender paced at a
known rate to a receiver on loopback (this test's private network namespace)."""

from __future__ import annotations

import time
from collections.abc import Callable

from netjail.backends.model import Process, Snapshot
from netjail.backends.system.inventory import Inventory

from tests.conftest import Peer

RATE = 200_000  # bytes a second
PORT = 47311


def by_pid(snap: Snapshot, pid: int) -> Process:
    return next(p for p in snap.processes if p.pid == pid)


def test_a_paced_tcp_sender_shows_its_send_rate_and_the_receiver_its_receive_rate(
    spawn_peer: Callable[..., Peer],
) -> None:
    sink = spawn_peer("tcp-sink", "127.0.0.1", PORT)
    sender = spawn_peer("tcp-paced", "127.0.0.1", PORT, RATE, interval=0.02)
    quiet = spawn_peer("tcp-client", "127.0.0.1", PORT, interval=3600)  # one line, then idle
    udp = spawn_peer("udp-send", "127.0.0.1", PORT + 1, interval=0.01)
    inventory = Inventory(traffic=True)
    first = inventory.snapshot(all_processes=False)
    assert by_pid(first, sender.pid).send_rate is None  # no baseline yet
    deadline = time.monotonic() + 30
    while len(by_pid(first, sink.pid).sockets) < 3:  # both connections accepted (a loaded machine)
        assert time.monotonic() < deadline, "the sink never accepted both connections"
        time.sleep(0.05)
        first = inventory.snapshot(all_processes=False)
    time.sleep(0.5)  # past the sender's slow start
    inventory.snapshot(all_processes=False)
    time.sleep(2.0)
    snap = inventory.snapshot(all_processes=False)
    sent = by_pid(snap, sender.pid)
    assert sent.send_rate is not None and sent.recv_rate is not None
    assert abs(sent.send_rate - RATE) <= 0.2 * RATE, sent.send_rate
    assert sent.recv_rate < 0.01 * RATE  # only ACKs come back: no payload
    received = by_pid(snap, sink.pid)
    assert received.recv_rate is not None
    assert abs(received.recv_rate - RATE) <= 0.2 * RATE, received.recv_rate
    assert by_pid(snap, quiet.pid).send_rate == 0.0  # counted, idle
    assert by_pid(snap, udp.pid).send_rate is None  # UDP: not counted, and said so


def test_an_inventory_not_counting_traffic_has_no_rates(spawn_peer: Callable[..., Peer]) -> None:
    spawn_peer("tcp-sink", "127.0.0.1", PORT + 2)
    sender = spawn_peer("tcp-paced", "127.0.0.1", PORT + 2, RATE, interval=0.02)
    inventory = Inventory()  # what `netjail ps` uses
    inventory.snapshot(all_processes=False)
    time.sleep(0.3)
    assert by_pid(inventory.snapshot(all_processes=False), sender.pid).send_rate is None
