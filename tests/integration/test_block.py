"""Blocking live processes with the cgroup jail: real traffic, counted at the receiver."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Peer
from tests.firewall_probe import netjail_left

CLI = Callable[..., subprocess.CompletedProcess[str]]


def block(cli: CLI, pid: int, *args: str) -> dict[str, Any]:
    out = cli("block", str(pid), "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def jails(cli: CLI) -> list[dict[str, Any]]:
    out = cli("list", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def jail(cli: CLI, name: str) -> dict[str, Any]:
    return next(j for j in jails(cli) if j["name"] == name)


def settle_count(peer: Peer, key: str, quiet: float = 0.4, timeout: float = 5.0) -> int:
    """The receiver's count once it stopped moving (in-flight packets delivered).

    A udp-recv peer says when it waited on an empty queue (`idle`): two such lines in a row,
    both written after this call, mean everything queued was read, even when a loaded machine
    kept the receiver off the CPU for longer than `quiet`."""
    if key == "received":
        start = len(peer.lines)
        end = time.monotonic() + max(timeout, 30)
        while time.monotonic() < end:
            fresh = [ln for ln in peer.lines[start:] if ln.startswith("COUNT ")]
            if len(fresh) >= 2 and all('"idle": true' in ln for ln in fresh[-2:]):
                return int(json.loads(fresh[-1][6:])["received"])
            time.sleep(0.05)
        raise AssertionError(f"{key} still rising: the block let traffic through ({peer.value(key)})")
    end = time.monotonic() + timeout
    last = peer.value(key)
    while time.monotonic() < end:
        time.sleep(quiet)
        now = peer.value(key)
        if now == last:
            return now
        last = now
    raise AssertionError(f"{key} still rising: the block let traffic through ({last})")


def rises(peer: Peer, key: str, by: int = 5, timeout: float = 5.0) -> bool:
    start = peer.value(key)
    return peer.wait_for(lambda c: int(c.get(key, 0)) >= start + by, timeout)  # type: ignore[call-overload]


def legacy_rules() -> str:
    return "".join(
        subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        for tool in ("iptables-legacy-save", "ip6tables-legacy-save")
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_sender_is_cut_off_counted_and_restored(
    cli: CLI, spawn_peer: Callable[..., Peer], host: str
) -> None:
    recv = spawn_peer("udp-recv", host, 0)
    port = int(recv.info["lport"])  # type: ignore[call-overload]
    sender = spawn_peer("udp-send", host, port)
    assert rises(recv, "received")

    result = block(cli, sender.pid, "--jail", "udp")
    assert result["jail"] == "udp" and result["members"][0]["pid"] == sender.pid
    sent_at_block = sender.value("sent") + sender.value("errors")
    frozen = settle_count(recv, "received")
    time.sleep(1.0)
    assert recv.value("received") == frozen, "packets crossed after block"
    attempts = sender.value("sent") + sender.value("errors") - sent_at_block
    assert attempts > 10
    counters = jail(cli, "udp")["counters"]
    assert counters["dropped_packets"] >= attempts - 20  # the sender's COUNT lines lag by <= 10
    assert counters["dropped_bytes"] >= counters["dropped_packets"] * 64

    family = "ipv6" if ":" in host else "ipv4"
    out = cli("counters", "--json")
    per = next(c for c in json.loads(out.stdout) if c["jail"] == "udp")
    fam = per["inet6" if family == "ipv6" else "inet"]
    assert fam["dropped_packets"] > 0 and fam["dropped_packets"] == per["dropped_packets"]

    out = cli("unblock", str(sender.pid), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["removed_jails"] == ["udp"]
    assert rises(recv, "received")
    assert jails(cli) == []
    assert netjail_left() == []


def test_new_sockets_of_a_jailed_process_fail(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send-fresh", "127.0.0.1", recv.info["lport"])
    assert rises(recv, "received")
    block(cli, sender.pid, "--jail", "fresh")
    frozen = settle_count(recv, "received")
    assert rises(sender, "errors", by=10), "new sockets still send"
    assert recv.value("received") == frozen
    assert cli("unblock", "--jail", "fresh").returncode == 0
    assert rises(recv, "received")


def test_established_tcp_client_is_cut_and_recovers(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    server = spawn_peer("tcp-listen", "127.0.0.1", 0)
    client = spawn_peer("tcp-client", "127.0.0.1", server.info["lport"], interval=0.05)
    assert rises(client, "ok")
    block(cli, client.pid, "--jail", "tcpc")
    frozen = settle_count(client, "ok", quiet=1.2)
    time.sleep(1.0)
    assert client.value("ok") == frozen
    assert jail(cli, "tcpc")["counters"]["dropped_packets"] > 0
    assert cli("unblock", str(client.pid)).returncode == 0
    assert rises(client, "ok", timeout=10), "the flow did not recover after unblock"


def test_listener_from_before_the_block_refuses_handshakes(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    server = spawn_peer("tcp-listen", "127.0.0.1", 0)
    port = int(server.info["lport"])  # type: ignore[call-overload]
    old_client = spawn_peer("tcp-client", "127.0.0.1", port)
    assert rises(old_client, "ok")
    block(cli, server.pid, "--jail", "srv")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    frozen = settle_count(old_client, "ok", quiet=1.2)
    time.sleep(0.5)
    assert old_client.value("ok") == frozen, "the accepted connection still answers"
    assert jail(cli, "srv")["counters"]["dropped_packets"] > 0
    assert cli("unblock", str(server.pid)).returncode == 0
    socket.create_connection(("127.0.0.1", port), timeout=2.0).close()


def test_listener_opened_inside_the_jail_is_covered_by_the_watcher(
    cli: CLI, spawn_peer: Callable[..., Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    peer = spawn_peer("listen-on-signal", "127.0.0.1", port)
    block(cli, peer.pid, "--jail", "late")
    peer.proc.send_signal(10)  # SIGUSR1: it opens a listener now, inside the jail
    assert peer.wait_for(lambda _: "lport" in peer.info, 5)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            break  # the watcher added the listener's rules: no handshake completes
        time.sleep(0.2)
    else:
        raise AssertionError("a listener opened inside the jail still accepts connections")


def test_allow_list_admits_only_listed_destinations(
    cli: CLI, spawn_peer: Callable[..., Peer], make_host: Callable[..., Any]
) -> None:
    a, b = make_host(), make_host()
    recv_a = spawn_peer("udp-recv", "0.0.0.0", 7001, netns=a.netns)
    recv_b = spawn_peer("udp-recv", "0.0.0.0", 7001, netns=b.netns)
    sender = spawn_peer("udp-send-multi", f"{a.addr4}:7001", f"{b.addr4}:7001")
    assert rises(recv_a, "received") and rises(recv_b, "received")
    block(cli, sender.pid, "--jail", "allow", "--allow", f"{a.addr4[:-2]}.0/24")
    frozen_b = settle_count(recv_b, "received")
    assert rises(recv_a, "received", by=10), "the allowed destination was cut too"
    assert recv_b.value("received") == frozen_b
    info = jail(cli, "allow")
    assert info["allow"] == [f"{a.addr4[:-2]}.0/24"]
    assert info["counters"]["allowed_packets"] >= 10 and info["counters"]["dropped_packets"] >= 10


def test_allow_cidr_port_admits_only_that_port(
    cli: CLI, spawn_peer: Callable[..., Peer], make_host: Callable[..., Any]
) -> None:
    a = make_host()
    open_ = spawn_peer("udp-recv", "0.0.0.0", 7001, netns=a.netns)
    shut = spawn_peer("udp-recv", "0.0.0.0", 7002, netns=a.netns)
    sender = spawn_peer("udp-send-multi", f"{a.addr4}:7001", f"{a.addr4}:7002", f"[{a.addr6}]:7001")
    assert rises(open_, "received") and rises(shut, "received")
    block(cli, sender.pid, "--jail", "port", "--allow", f"{a.addr4}:7001")
    frozen = settle_count(shut, "received")
    assert rises(open_, "received", by=10)
    assert shut.value("received") == frozen


def test_tree_covers_an_existing_child(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    parent = spawn_peer("udp-send-child", "127.0.0.1", recv.info["lport"])
    child = int(parent.info["child_pid"])  # type: ignore[call-overload]
    assert rises(recv, "received")
    result = block(cli, parent.pid, "--tree", "--jail", "tree")
    assert {m["pid"] for m in result["members"]} == {parent.pid, child}
    frozen = settle_count(recv, "received")
    time.sleep(0.5)
    assert recv.value("received") == frozen
    assert cli("unblock", str(parent.pid)).returncode == 0  # the child goes with its root
    assert rises(recv, "received")


def test_kill_connections_aborts_the_established_flow(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    server = spawn_peer("tcp-listen", "127.0.0.1", 0)
    client = spawn_peer("tcp-client", "127.0.0.1", server.info["lport"], interval=0.2)
    assert rises(client, "ok", by=2)
    result = block(cli, client.pid, "--jail", "kill", "--kill-connections")
    assert result["killed_connections"] == 1
    assert client.wait_for(lambda c: "error" in c or c.get("closed") is True, 5), client.latest


def test_refusals_have_exit_2_and_leave_nothing(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    import os

    out = cli("block", "1")
    assert out.returncode == 2 and "PID 1" in out.stderr and "Traceback" not in out.stderr
    out = cli("block", str(os.getpid()))  # pytest runs the CLI: it is netjail's ancestor
    assert out.returncode == 2 and "ancestor" in out.stderr
    out = cli("block", "99999999")
    assert out.returncode == 2 and "no such process" in out.stderr
    peer = spawn_peer("sleep")
    out = cli("block", str(peer.pid), "--allow", "10.0.0.0/33")
    assert out.returncode == 2 and "'10.0.0.0/33'" in out.stderr
    out = cli("block", str(peer.pid), user="nobody")
    assert out.returncode == 3 and "root" in out.stderr
    assert jails(cli) == []
    assert netjail_left() == []


def test_a_reused_pid_is_refused(spawn_peer: Callable[..., Peer]) -> None:
    from netjail.backends.engine import Engine
    from netjail.backends.errors import NoSuchProcess
    from netjail.backends.model import BlockRequest
    from netjail.backends.system.identity import read_stat

    peer = spawn_peer("sleep")
    stat = read_stat(peer.pid)
    assert stat is not None
    with pytest.raises(NoSuchProcess, match="another process"):
        # the identity recorded earlier no longer matches: as if the PID had been reused
        Engine(spawn_watcher=False).block(BlockRequest(peer.pid, start_time=stat.start_time - 1))
    assert netjail_left() == []


def test_ps_shows_the_jail(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    block(cli, peer.pid, "--jail", "shown")
    out = cli("ps", "--json", "--pid", str(peer.pid))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["jail"] == "shown"


def test_allow_loopback_keeps_loopback_open(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send-fresh", "127.0.0.1", recv.info["lport"])
    block(cli, sender.pid, "--jail", "lo", "--allow-loopback")
    assert rises(recv, "received", by=20), "loopback was cut despite --allow-loopback"
    info = jail(cli, "lo")
    assert info["allow_loopback"] is True and info["counters"]["allowed_packets"] >= 20
    assert info["counters"]["dropped_packets"] == 0


def test_kill_connections_over_ipv6(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    server = spawn_peer("tcp-listen", "::1", 0)
    client = spawn_peer("tcp-client", "::1", server.info["lport"], interval=0.2)
    assert rises(client, "ok", by=2)
    result = block(cli, client.pid, "--jail", "kill6", "--kill-connections")
    assert result["killed_connections"] == 1
    assert client.wait_for(lambda c: "error" in c or c.get("closed") is True, 5), client.latest


def test_partial_unblock_restores_sockets_opened_inside_the_jail(
    cli: CLI, spawn_peer: Callable[..., Peer]
) -> None:
    """A socket keeps the cgroup it was created in: releasing one member of a shared jail must
    also release the sockets it opened while jailed, while the other member stays cut off."""
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    port = recv.info["lport"]
    a = spawn_peer("send-on-signal", "127.0.0.1", port)
    b = spawn_peer("udp-send", "127.0.0.1", port)
    block(cli, a.pid, "--jail", "shared")
    block(cli, b.pid, "--jail", "shared")
    a.proc.send_signal(10)  # SIGUSR1: A opens its socket now, inside the jail
    assert rises(a, "errors", by=10)
    frozen = settle_count(recv, "received")
    assert cli("unblock", str(a.pid)).returncode == 0
    assert rises(recv, "received", by=10), "A's socket from inside the jail is still blocked"
    assert rises(b, "errors", by=10), "B was released with A"
    assert [m["pid"] for m in jail(cli, "shared")["members"]] == [b.pid]
    assert recv.value("received") > frozen


def test_children_born_in_the_jail_leave_with_their_root(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    parent = spawn_peer("fork-on-signal", "127.0.0.1", recv.info["lport"])
    block(cli, parent.pid, "--jail", "born")
    parent.proc.send_signal(10)  # SIGUSR1: the child is born inside the jail
    assert parent.wait_for(lambda _: "child_pid" in parent.info, 5)
    child = int(parent.info["child_pid"])  # type: ignore[call-overload]
    time.sleep(0.5)
    assert recv.value("received") == 0, "a child born in the jail got through"
    out = cli("unblock", str(child))
    assert out.returncode == 2 and f"unblock {parent.pid}" in out.stderr
    assert child in [m["pid"] for m in jail(cli, "born")["members"]]
    assert cli("unblock", str(parent.pid)).returncode == 0
    assert rises(recv, "received", by=10), "the child stayed jailed"
    assert jails(cli) == []
