"""netns jails: a named network namespace per jail, loopback only or with a veth link and NAT."""

from __future__ import annotations

import errno
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.launch.netns import (
    Forwarding,
    JailNetns,
    create_netns,
    forwarding,
    host_iface,
    list_netjail_netns,
    netns_pids,
    read_netns,
    remove_netns,
)
from netjail.backends.launch.spawn import exit_status, spawn_jailed

from tests import firewall_probe
from tests.conftest import Host
from tests.integration.launch_support import Listener, add_veth_pair, probe, start_listener, tcp_reply

MakeNetns = Callable[..., JailNetns]


@pytest.fixture
def jail_netns() -> Iterator[MakeNetns]:
    made: list[str] = []

    def make(jail: str, **kwargs: Any) -> JailNetns:
        made.append(jail)
        return create_netns(jail, **kwargs)

    yield make
    for jail in made:
        remove_netns(jail)


@pytest.fixture
def listeners() -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(bind: str, netns: str | None = None) -> Listener:
        started.append(start_listener(bind, netns))
        return started[-1]

    yield start
    for listener in started:
        listener.stop()


def ip_netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def nat_rules() -> str:
    return "".join(
        subprocess.run([tool, "-c", "-t", "nat"], capture_output=True, text=True, check=True).stdout
        for tool in ("iptables-legacy-save", "ip6tables-legacy-save")
    )


def test_netns_without_link_has_its_own_loopback_only(
    make_host: Callable[[], Host], uniq: Callable[[str], str], jail_netns: MakeNetns, listeners: Any
) -> None:
    host = make_host()
    remote4 = listeners(host.addr4, host.netns)
    remote6 = listeners(host.addr6, host.netns)
    local = listeners("127.0.0.1")
    targets = {
        "host4": f"connect:{host.addr4}:{remote4.port}",
        "host6": f"connect:{host.addr6}:{remote6.port}",
        "parent_loopback": f"connect:127.0.0.1:{local.port}",
    }
    # Control: from the test's own namespace all three answer.
    assert tcp_reply(host.addr4, remote4.port) == tcp_reply(host.addr6, remote6.port) == "hello"
    assert tcp_reply("127.0.0.1", local.port) == "hello"

    jail = uniq("n")
    info = jail_netns(jail)
    assert info.name in ip_netns_list() and jail in list_netjail_netns()
    assert info.host_iface is None and info.prefixes == ()

    rc, out = probe("loopback", "status", *targets.values(), exit_code=5, user="nobody", netns=info.name)
    assert rc == 5
    assert out["status"]["Uid"] == "65534 65534 65534 65534"
    assert out["loopback"] == "ok"
    assert out[targets["host4"]]["errno"] == errno.ENETUNREACH
    assert out[targets["host6"]]["errno"] == errno.ENETUNREACH
    assert out[targets["parent_loopback"]]["errno"] == errno.ECONNREFUSED  # its own 127.0.0.1

    remove_netns(jail)
    assert info.name not in ip_netns_list() and jail not in list_netjail_netns()


def test_netns_with_veth_reaches_the_host_masqueraded_and_is_removed_without_trace(
    make_host: Callable[[], Host], uniq: Callable[[str], str], jail_netns: MakeNetns, listeners: Any
) -> None:
    host = make_host()
    remote4 = listeners(host.addr4, host.netns)
    remote6 = listeners(host.addr6, host.netns)
    local = listeners("127.0.0.1")
    jail = uniq("v")
    info = jail_netns(jail, veth=True)
    assert info.host_iface == host_iface(jail) and link_exists(info.host_iface)
    assert info.addresses is not None
    assert forwarding() == Forwarding(ipv4=True, ipv6=True)
    assert read_netns(jail) == JailNetns(jail, info.name, info.path, info.host_iface, info.addresses)
    assert firewall_probe.firewall().masquerades()[jail] == tuple(sorted(info.prefixes))

    t4 = f"connect:{host.addr4}:{remote4.port}"
    t6 = f"connect:{host.addr6}:{remote6.port}"
    lo = f"connect:127.0.0.1:{local.port}"
    rc, out = probe(t4, t6, lo, exit_code=9, user="nobody", netns=info.name)
    assert rc == 9
    assert out[t4] == {"errno": 0, "reply": "hello"}
    assert out[t6] == {"errno": 0, "reply": "hello"}
    assert out[lo]["errno"] == errno.ECONNREFUSED  # the link does not open the parent's loopback
    # The host saw our side of its link, not the netns address: the traffic was masqueraded.
    assert remote4.next_peer() == host.gw4
    assert remote6.next_peer() == host.gw6
    if firewall_probe.backend() == "iptables":  # its NAT rules count packets: each one was used
        counted = re.findall(r"\[(\d+):\d+\] -A NETJAIL-NAT -s (\S+) .*netjail:" + jail, nat_rules())
        assert {src for _, src in counted} == set(info.prefixes)
        assert all(int(packets) >= 1 for packets, _ in counted)

    remove_netns(jail)
    assert info.name not in ip_netns_list()
    assert not link_exists(info.host_iface)
    assert "NETJAIL" not in nat_rules() and firewall_probe.netjail_left() == []
    assert read_netns(jail) is None
    remove_netns(jail)  # idempotent


def test_address_block_avoids_prefixes_already_routed_here(
    uniq: Callable[[str], str], jail_netns: MakeNetns
) -> None:
    link = uniq("njl")
    add_veth_pair(link)
    try:
        subprocess.run(["ip", "addr", "add", "10.231.0.1/24", "dev", link], check=True)
        subprocess.run(["ip", "-6", "addr", "add", "fd00:231:1::1/64", "dev", link, "nodad"], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        first = jail_netns(uniq("a"), veth=True)
        second = jail_netns(uniq("b"), veth=True)
        assert first.addresses is not None and second.addresses is not None
        assert first.addresses.index == 2  # 0 is taken for IPv4, 1 for IPv6
        assert second.addresses.index == 3  # 2 is now the first jail's
    finally:
        subprocess.run(["ip", "link", "del", link], check=True)


def test_netns_pids_follow_the_jailed_processes(uniq: Callable[[str], str], jail_netns: MakeNetns) -> None:
    jail = uniq("p")
    info = jail_netns(jail)
    assert netns_pids(jail) == []
    proc = spawn_jailed(["sleep", "30"], netns=info.name)
    try:
        assert netns_pids(jail) == [proc.pid]
    finally:
        proc.kill()
        assert exit_status(proc.wait(5)) == 128 + 9
    assert netns_pids(jail) == []


def test_creating_an_existing_netns_is_refused_and_leaves_it_alone(
    uniq: Callable[[str], str], jail_netns: MakeNetns
) -> None:
    jail = uniq("e")
    info = jail_netns(jail)
    with pytest.raises(BadInput, match="already exists"):
        create_netns(jail)
    assert info.name in ip_netns_list()


def test_missing_netns_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no network namespace"):
        spawn_jailed(["true"], netns="netjail-does-not-exist")
