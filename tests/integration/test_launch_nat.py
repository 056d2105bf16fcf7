"""netjail's masquerade rules in the real nat tables (iptables-legacy), read back with -save."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest
from netjail.backends.firewall.nat import Masquerade

from tests.integration.launch_support import add_veth_pair

# the NETJAIL-NAT chain in the legacy nat tables, read back with -save
pytestmark = pytest.mark.backend("iptables")

FOREIGN4 = ["-s", "192.0.2.0/24", "-j", "MASQUERADE"]
FOREIGN6 = ["-s", "2001:db8::/64", "-j", "MASQUERADE"]


def save(tool: str) -> str:
    return subprocess.run([tool, "-c", "-t", "nat"], capture_output=True, text=True, check=True).stdout


def both() -> str:
    return save("iptables-legacy-save") + save("ip6tables-legacy-save")


def ours(text: str) -> list[str]:
    return [line for line in text.splitlines() if "NETJAIL" in line]


@pytest.fixture
def masq() -> Iterator[Masquerade]:
    m = Masquerade()
    yield m
    m.reset()


@pytest.fixture
def foreign_rules() -> Iterator[None]:
    """Someone else's POSTROUTING rules (Docker-like), which netjail must never touch."""
    subprocess.run(["iptables-legacy", "-w", "-t", "nat", "-A", "POSTROUTING", *FOREIGN4], check=True)
    subprocess.run(["ip6tables-legacy", "-w", "-t", "nat", "-A", "POSTROUTING", *FOREIGN6], check=True)
    yield
    subprocess.run(["iptables-legacy", "-w", "-t", "nat", "-D", "POSTROUTING", *FOREIGN4], check=True)
    subprocess.run(["ip6tables-legacy", "-w", "-t", "nat", "-D", "POSTROUTING", *FOREIGN6], check=True)


def test_sync_remove_reset_touch_only_netjail_rules(
    masq: Masquerade, foreign_rules: None, uniq: Callable[[str], str]
) -> None:
    a, b = uniq("ma"), uniq("mb")
    masq.sync_masquerade(a, ["10.231.5.0/30", "fd00:231:5::/64"])
    masq.sync_masquerade(b, ["10.231.6.2/30"], out_iface="eth7")  # host bits are dropped
    assert masq.read() == {a: ("10.231.5.0/30", "fd00:231:5::/64"), b: ("10.231.6.0/30",)}
    v4 = save("iptables-legacy-save")
    assert re.search(r"^\[\d+:\d+\] -A POSTROUTING -m comment --comment netjail -j NETJAIL-NAT$", v4, re.M)
    assert v4.index("-j NETJAIL-NAT") < v4.index("-s 192.0.2.0/24"), "the jump comes first"
    assert f'-A NETJAIL-NAT -s 10.231.6.0/30 -o eth7 -m comment --comment "netjail:{b}" -j MASQUERADE' in v4

    masq.sync_masquerade(a, ["10.231.5.0/30"])  # drop a's IPv6 prefix only
    assert masq.read() == {a: ("10.231.5.0/30",), b: ("10.231.6.0/30",)}
    assert "NETJAIL" not in save("ip6tables-legacy-save"), "an empty family keeps no chain or jump"

    masq.remove(a)
    masq.remove(a)  # idempotent
    assert masq.read() == {b: ("10.231.6.0/30",)}

    masq.reset()
    assert masq.read() == {}
    text = both()
    assert ours(text) == []
    assert "-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE" in text
    assert "-A POSTROUTING -s 2001:db8::/64 -j MASQUERADE" in text


def test_resync_keeps_rules_and_their_counters(masq: Masquerade, uniq: Callable[[str], str]) -> None:
    """A re-sync with the same sources leaves the rule in place: its packet counter survives."""
    jail, link = uniq("mc"), uniq("njm")
    masq.sync_masquerade(jail, ["10.231.9.0/30"])
    add_veth_pair(link)
    try:
        subprocess.run(["ip", "addr", "add", "10.231.9.1/30", "dev", link], check=True)
        subprocess.run(["ip", "addr", "add", "198.51.100.1/24", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        # A datagram from the jail prefix leaving through the link opens a conntrack entry: its
        # first packet passes nat POSTROUTING and counts on the masquerade rule.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("10.231.9.1", 0))
            s.sendto(b"x", ("198.51.100.77", 9))
        before = [line for line in ours(save("iptables-legacy-save")) if "MASQUERADE" in line]
        assert len(before) == 1 and before[0].startswith("[1:"), before
        masq.sync_masquerade(jail, ["10.231.9.0/30"])
        after = [line for line in ours(save("iptables-legacy-save")) if "MASQUERADE" in line]
        assert after == before
    finally:
        subprocess.run(["ip", "link", "del", link], check=True)
