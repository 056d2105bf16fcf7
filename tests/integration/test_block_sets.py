"""Where sockets cannot be marked (no pidfd_getfd, simulated with a seccomp filter answering
ENOSYS as a kernel < 5.6 does), block falls back to the jail's ipsets: one set lookup per
direction and kind, whatever the number of sockets (firewall/fallback_sets.py). What arrives is
counted at the receiver; sets are listed through pyroute2.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
from netjail.backends.firewall import registry
from pyroute2.ipset import IPSet

from tests import firewall_probe
from tests.conftest import Peer, python_for
from tests.integration.test_block import CLI, legacy_rules
from tests.integration.test_block_exact import (
    Counterpart,
    free_port,
    moving,
    probe,  # noqa: F401 (a fixture)
    reaches,
    side,  # noqa: F401 (a fixture)
)
from tests.integration.test_block_marks import NO_PIDFD_GETFD, sock_mark, unblock

# kernel ipsets are the iptables backend's fallback (registry: needs_ipset); nftables keeps its
# sets in its own table. The traffic test runs on both; the rest is about ipsets.
iptables_only = pytest.mark.backend("iptables")


def fallback_sets_held(jail: str) -> set[str]:
    """The jail's fallback sets in the kernel, wherever the backend in use keeps them."""
    if registry.selected().name == "nftables":
        out = subprocess.run(
            ["nft", "-t", "-j", "list", "sets", "table", "inet", "netjail"], capture_output=True, text=True
        )
        names = (
            {i["set"]["name"] for i in json.loads(out.stdout)["nftables"] if "set" in i}
            if out.returncode == 0
            else set()
        )
    else:
        names = netjail_sets()
    return {n for n in names if n.startswith(("nj4-", "nj6-")) and f"-{jail}-" in n}


def netjail_sets() -> set[str]:
    with IPSet() as s:
        return {str(m.get_attr("IPSET_ATTR_SETNAME")) for m in s.list(flags=1 << 1)}


def block_without_getfd(pid: int, jail: str) -> subprocess.CompletedProcess[str]:
    cmd = [*python_for(None), "-c", NO_PIDFD_GETFD, "block", str(pid), "--jail", jail]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("cannot mark the sockets") == 1, out.stderr
    assert "fallback in use" in out.stderr and "fallback sets" in out.stderr, out.stderr
    return out


def test_fallback_cuts_every_kind_of_socket_both_ways_and_unblock_leaves_no_set(
    cli: CLI,
    probe: Callable[..., Peer],  # noqa: F811
    side: Counterpart,  # noqa: F811
) -> None:
    """A wildcard and a specific listener, an established flow, a connected and an unconnected
    UDP socket, none of them marked: all cut both ways by set lookups, restored by unblock."""
    member = probe("many", "127.0.0.1", side.tcp.getsockname()[1], side.udp.getsockname()[1])
    ports, fds = member.info["ports"], member.info["fds"]
    assert isinstance(ports, dict) and isinstance(fds, dict)
    tcp_ports = (ports["wild"], ports["specific"])
    assert all(moving(member, side, 10.0, until_all=True).values())

    out = block_without_getfd(member.pid, "fbmany")
    assert "fallback sets" in out.stdout, out.stdout
    assert {k: sock_mark(member.pid, fd) for k, fd in fds.items()} == dict.fromkeys(fds, 0)
    if registry.selected().name == "iptables":
        rules = legacy_rules()
        assert "--match-set nj4-fbmany-f src,src,dst" in rules and "--match-set nj4-fbmany-p dst,dst" in rules
    assert {"nj4-fbmany-f", "nj4-fbmany-p", "nj4-fbmany-s"} <= fallback_sets_held("fbmany")
    time.sleep(0.3)  # what was on its way
    assert not any(moving(member, side).values())
    assert not any(reaches(p, socket.SOCK_STREAM) for p in tcp_ports)
    assert not reaches(ports["unconnected"], socket.SOCK_DGRAM)

    unblock(cli, member.pid)
    assert fallback_sets_held("fbmany") == set()
    assert all(moving(member, side, 15.0, until_all=True).values())
    assert all(reaches(p, socket.SOCK_STREAM) for p in tcp_ports)
    assert reaches(ports["unconnected"], socket.SOCK_DGRAM)


def _held_connections(server: Peer, n: int) -> list[socket.socket]:
    port = int(server.info["port"])  # type: ignore[call-overload]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    assert server.wait_for(lambda c: int(c.get("accepted", 0)) >= n, 30)
    for c in clients:
        c.settimeout(0.05)
        c.recv(100)  # the greeting: the flow works before the block
    return clients


def _answers(clients: list[socket.socket], wait: float) -> int:
    """Lines sent on every connection: how many echoes came back within `wait`."""
    for c in clients:
        c.send(b"ping\n")
    got = 0
    end = time.monotonic() + wait
    pending = list(clients)
    while pending and time.monotonic() < end:
        for c in list(pending):
            try:
                if c.recv(100):
                    got += 1
                    pending.remove(c)
            except TimeoutError:
                pass
    return got


@iptables_only
def test_fallback_rules_do_not_grow_with_the_sockets_held(cli: CLI, probe: Callable[..., Peer]) -> None:  # noqa: F811
    """A server holding 5, then 200 connections, blocked without pidfd_getfd: the same number of
    netjail rules; its connections' data neither arrives nor is answered; nothing left after."""
    counts = []
    for n in (5, 200):
        server = probe("reuseport-tcp", "127.0.0.1", free_port(socket.SOCK_STREAM))
        clients = _held_connections(server, n)
        try:
            assert _answers(clients[:5], 5.0) == 5
            assert server.wait_for(lambda c: int(c.get("accepted-data", 0)) >= 5, 10)  # its output read
            echoed = server.value("accepted-data")
            started = time.monotonic()
            block_without_getfd(server.pid, f"fbgrow{n}")
            took = time.monotonic() - started
            counts.append(firewall_probe.rule_count())
            assert _answers(clients, 1.0) == 0
            time.sleep(0.3)  # a line that did arrive would be counted by now
            assert server.value("accepted-data") == echoed  # nothing arrived (receiver's count)
            unblock(cli, server.pid)
            assert netjail_sets() == set()
            print(f"fallback block of {n} connections: {took:.3f} s (CLI, seccomp wrapper included)")
        finally:
            for c in clients:
                c.close()
            server.kill()
    assert counts[0] == counts[1], counts
    # 32 with marks; the fallback lane, its gates, 4 set rules; the jail chains' 4 log rules
    assert counts[1] <= 44, legacy_rules()


@iptables_only
def test_reset_leaves_no_set_behind(cli: CLI, probe: Callable[..., Peer]) -> None:  # noqa: F811
    server = probe("reuseport-tcp", "127.0.0.1", free_port(socket.SOCK_STREAM))
    clients = _held_connections(server, 3)
    try:
        block_without_getfd(server.pid, "fbreset")
        assert "nj4-fbreset-f" in netjail_sets()
        out = cli("reset")
        assert out.returncode == 0, out.stderr
        assert netjail_sets() == set()
        assert firewall_probe.rule_count() == 0
    finally:
        for c in clients:
            c.close()


@iptables_only
def test_doctor_says_whether_pidfd_getfd_works_and_that_sets_are_used(cli: CLI) -> None:
    from tests.integration.test_doctor import by_name

    c = by_name(cli("doctor", "--json"))
    assert c["pidfd_getfd"]["status"] == "ok", c["pidfd_getfd"]
    assert c["ipset"]["status"] == "ok" and "netjail holds no set now" in c["ipset"]["detail"], c["ipset"]
    cmd = [*python_for(None), "-c", NO_PIDFD_GETFD, "doctor", "--json"]
    c = by_name(subprocess.run(cmd, capture_output=True, text=True, timeout=60))
    assert c["pidfd_getfd"]["status"] == "warn", c["pidfd_getfd"]
    assert "Function not implemented: fallback in use" in c["pidfd_getfd"]["detail"]
    assert netjail_sets() == set()  # the ipset probe removed its own
