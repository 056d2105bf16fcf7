"""Rule entries: layout constants, encode -> decode round trips, foreign entries refused.

Entries are built by python-iptables/libxtables in user space only: no kernel involved.
"""

from __future__ import annotations

import ctypes as ct
import struct

import pytest
from netjail.backends.firewall.base import Match
from netjail.backends.firewall.rule_build import build_entry
from netjail.backends.firewall.xt_layout import IPV4, IPV6, LAYOUTS, decode_entry


def test_layout_matches_python_iptables_structs() -> None:
    from iptc import ip4tc, ip6tc

    for layout, entry, ip, ip_field in (
        (IPV4, ip4tc.ipt_entry, ip4tc.ipt_ip, "ip"),
        (IPV6, ip6tc.ip6t_entry, ip6tc.ip6t_ip6, "ipv6"),
    ):
        assert getattr(entry, ip_field).offset == 0
        assert layout.size == ct.sizeof(entry)
        assert layout.target_offset == entry.target_offset.offset
        assert layout.counters == entry.counters.offset
        assert layout.proto == ip.proto.offset
        assert layout.ifaces == ip.iniface.offset


ROUND_TRIP = [
    Match("inet"),
    Match("inet", "udp", dst="127.0.0.1/32", dport=53),
    Match("inet", "tcp", src="10.0.0.0/8", dst="10.1.0.0/16", sport=80, dport=0),
    Match("inet", "udp"),
    Match("inet", cgroup="/netjail/web", uid_owner=1000, gid_owner=100),
    Match("inet", out_iface="eth0", in_iface="veth+"),
    Match("inet6", "udp", src="fd00::/64", dst="::1/128", sport=1, dport=65535),
    Match("inet6", "tcp"),
    Match("inet6", cgroup="/x", out_iface="lo", gid_owner=0),
    Match("inet", mark=0x01000000, mark_mask=0xFF000000),
    Match("inet6", mark=0x300, mark_mask=0xF00),
]


@pytest.mark.parametrize("match", ROUND_TRIP, ids=str)
@pytest.mark.parametrize("target", ["DROP", "RETURN", "NJ-O-some-jail"])
def test_encode_decode_round_trip(match: Match, target: str) -> None:
    decoded = decode_entry(LAYOUTS[match.family], build_entry(match, target))
    assert decoded is not None
    assert decoded.match == match
    assert decoded.comment is None


def test_jump_entries_carry_the_chain_name() -> None:
    entry = build_entry(Match("inet"), "NETJAIL-OUT", "netjail")
    (target_offset,) = struct.unpack_from("=H", entry, IPV4.target_offset)
    assert entry[target_offset + 2 : target_offset + 14] == b"NETJAIL-OUT\0"
    decoded = decode_entry(IPV4, entry)
    assert decoded is not None and decoded.comment == "netjail" and decoded.match == Match("inet")


def _patched(entry: bytes, offset: int, data: bytes) -> bytes:
    return entry[:offset] + data + entry[offset + len(data) :]


def test_inverted_address_is_not_ours() -> None:
    entry = build_entry(Match("inet", dst="10.0.0.1/32"), "DROP")
    invflags = IPV4.proto + 3
    assert decode_entry(IPV4, _patched(entry, invflags, b"\x10")) is None


def test_port_range_is_not_ours() -> None:
    entry = build_entry(Match("inet", "udp", dport=53), "DROP")
    dpts = IPV4.size + 32 + 4
    assert decode_entry(IPV4, _patched(entry, dpts, struct.pack("=HH", 53, 60))) is None


def test_unknown_match_is_not_ours() -> None:
    entry = build_entry(Match("inet", "tcp", dport=22), "DROP")
    name = IPV4.size + 2
    assert decode_entry(IPV4, _patched(entry, name, b"mark\0")) is None


def test_inverted_cgroup_is_not_ours() -> None:
    entry = build_entry(Match("inet6", cgroup="/a"), "DROP")
    assert decode_entry(IPV6, _patched(entry, IPV6.size + 32 + 2, b"\x01")) is None


def test_truncated_entry_is_not_ours() -> None:
    entry = build_entry(Match("inet", "tcp", dport=22), "DROP")
    assert decode_entry(IPV4, entry[: IPV4.size + 20]) is None
