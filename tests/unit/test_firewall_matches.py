"""Canonical form and validation of Match / JailRules."""

from __future__ import annotations

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.firewall.matches import canonical_match, canonical_rules, check_jail_name


def test_addresses_become_prefixes_and_match_all_becomes_none() -> None:
    m = canonical_match(Match("inet", src="10.1.2.3", dst="0.0.0.0/0"), "out")
    assert (m.src, m.dst) == ("10.1.2.3/32", None)
    m6 = canonical_match(Match("inet6", dst="fd00:199:1::7/64"), "out")
    assert m6.dst == "fd00:199:1::/64"


def test_cgroup_path_normalised() -> None:
    assert canonical_match(Match("inet", cgroup="//netjail/web/"), "out").cgroup == "/netjail/web"


@pytest.mark.parametrize(
    ("match", "direction", "fragment"),
    [
        (Match("inet", dst="fd00::1"), "out", "not an inet address"),
        (Match("inet6", src="10.0.0.1"), "out", "not an inet6 address"),
        (Match("inet", dst="10.0.0.300"), "out", "bad destination"),
        (Match("inet", dport=53), "out", "needs a protocol"),
        (Match("inet", "icmp"), "out", "bad protocol"),
        (Match("inet", "udp", dport=70000), "out", "bad destination port"),
        (Match("inet", uid_owner=1000), "in", "outgoing traffic only"),
        (Match("inet", cgroup="/x"), "fwd", "forwarded"),
        (Match("inet", cgroup="relative"), "out", "absolute path"),
        (Match("inet", in_iface="eth0"), "out", "input interface"),
        (Match("inet", out_iface="a-name-far-too-long"), "fwd", "1-15 characters"),
        (Match("ipx"), "out", "address family"),
        (Match("inet", "icmpv6"), "in", "IPv6 protocol"),
        (Match("inet6", "icmpv6", dport=1), "in", "needs a protocol"),
        (Match("inet6", "udp", icmp6_type=135), "in", "ICMPv6 type"),
        (Match("inet6", "icmpv6", icmp6_type=256), "in", "ICMPv6 type"),
        (Match("inet", mark=1), "out", "both a mark and a mask"),
        (Match("inet", mark=0x100, mark_mask=0xFF), "out", "inside a 32-bit mask"),
        (Match("inet", mark=0, mark_mask=0xFF), "out", "non-zero"),
        (Match("inet", mark=1, mark_mask=2**32), "out", "32-bit mask"),
    ],
)
def test_bad_matches_refused(match: Match, direction: str, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        canonical_match(match, direction)


@pytest.mark.parametrize("name", ["", "-x", "a" * 24, "with space", "semi;colon"])
def test_bad_jail_names_refused(name: str) -> None:
    with pytest.raises(BadInput):
        check_jail_name(name)


def test_longest_jail_name_fits_a_chain_name() -> None:
    assert check_jail_name("a" * 23) == "a" * 23


def test_canonical_rules_sorts_and_dedupes() -> None:
    a = Match("inet6", "udp", dport=53)
    b = Match("inet", "udp", dport=53)
    c = Match("inet", "tcp", dst="10.0.0.1")
    r = canonical_rules(JailRules("j", out_selectors=(a, b, Match("inet", "udp", dport=53), c)))
    assert r.out_selectors == (
        Match("inet", "tcp", dst="10.0.0.1/32"),
        Match("inet", "udp", dport=53),
        Match("inet6", "udp", dport=53),
    )
    assert canonical_rules(JailRules("j", out_selectors=(c, a, b))) == r


def test_net_admin_capability_read_from_status() -> None:
    from netjail.backends.firewall.libiptc import has_net_admin

    assert has_net_admin("Name:\tx\nCapEff:\t000001ffffffffff\n")
    assert not has_net_admin("Name:\tx\nCapEff:\t0000000000000000\n")
    assert has_net_admin("Name:\tx\nCapEff:\t0000000000001000\n")
