"""Fallback sets, the pure parts: names, entries per socket, kernel members and back, canonical
form and validation, and the set match's entry layout decoded back."""

from __future__ import annotations

import struct

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.firewall.base import MAX_JAIL_NAME, JailRules, Match, SetEntry
from netjail.backends.firewall.fallback_sets import (
    IPSET_MAXNAMELEN,
    canonical_entries,
    entries_from_members,
    jail_set_names,
    members,
    selectors_for_sets,
    set_kind,
    set_name,
)
from netjail.backends.firewall.matches import canonical_match, canonical_rules
from netjail.backends.firewall.rule_build import build_entry
from netjail.backends.firewall.xt_layout import IPV4, IPV6, decode_entry
from netjail.backends.jails.socket_rules import set_entries_for, set_entries_for_all
from netjail.backends.model import Socket


def test_names_fit_the_kernels_limit_and_are_told_apart() -> None:
    longest = "j" * MAX_JAIL_NAME
    names = jail_set_names(longest)
    assert len(names) == 6 and all(len(n.encode()) < IPSET_MAXNAMELEN for n in names)
    assert set_name("inet6", "web-f", "port") == "nj6-web-f-p"
    assert set_kind("nj6-web-f-p") == ("inet6", "port")
    assert set_kind("nj4-web-f") == ("inet", "flow")
    assert set_kind("docker-set") is None
    assert jail_set_names("web") & jail_set_names("web-f") == set()


def sock(
    proto: str, local: str, lport: int, remote: str = "0.0.0.0", rport: int = 0, state: str = ""
) -> Socket:
    fam = "inet6" if ":" in local else "inet"
    return Socket(
        fam, proto, local, lport, remote, rport, state or ("LISTEN" if proto == "tcp" else "UNCONN"), 1
    )


def test_entries_per_socket_say_what_the_address_rules_said() -> None:
    assert set_entries_for(sock("tcp", "10.0.0.1", 5000, "10.0.0.2", 80, "ESTABLISHED")) == [
        SetEntry("inet", "flow", "tcp", 5000, "10.0.0.1", "10.0.0.2")
    ]
    # connected UDP: its flow coming in, its local port only going out (sendto() to anyone)
    assert set_entries_for(sock("udp", "10.0.0.1", 5353, "10.0.0.3", 53, "ESTABLISHED")) == [
        SetEntry("inet", "send", "udp", 5353),
        SetEntry("inet", "flow", "udp", 5353, "10.0.0.1", "10.0.0.3"),
    ]
    assert set_entries_for(sock("tcp", "::", 8080)) == [
        SetEntry("inet", "port", "tcp", 8080),
        SetEntry("inet6", "port", "tcp", 8080),
    ]
    assert set_entries_for(sock("udp", "127.0.0.1", 53)) == [
        SetEntry("inet", "port", "udp", 53, "127.0.0.1"),
        SetEntry("inet", "send", "udp", 53),
    ]
    mapped = sock("tcp", "::ffff:10.0.0.1", 22, "::ffff:10.0.0.9", 4000, "ESTABLISHED")
    assert set_entries_for(mapped) == [SetEntry("inet", "flow", "tcp", 22, "10.0.0.1", "10.0.0.9")]
    assert set_entries_for(sock("tcp", "0.0.0.0", 0)) == []
    assert set_entries_for(sock("tcp", "10.0.0.1", 5000, state="SYN_SENT")) == []


def test_rules_do_not_grow_with_the_entries() -> None:
    many = [sock("tcp", "10.0.0.1", 1024 + i, "10.0.0.2", 80, "ESTABLISHED") for i in range(2000)]
    many += [sock("udp", "0.0.0.0", 3000 + i) for i in range(500)]
    entries = set_entries_for_all(many)
    assert len(entries) == 2000 + 1000
    out, inn = selectors_for_sets("big", entries)
    assert out == (
        Match("inet", match_set="nj4-big-f", set_flags="src,src,dst"),
        Match("inet", match_set="nj4-big-p", set_flags="src,src"),
        Match("inet", match_set="nj4-big-s", set_flags="src,src"),
    )
    assert inn == (
        Match("inet", match_set="nj4-big-f", set_flags="dst,dst,src"),
        Match("inet", match_set="nj4-big-p", set_flags="dst,dst"),
    )
    assert selectors_for_sets("none", ()) == ((), ())


@pytest.mark.parametrize(
    "entry",
    [
        SetEntry("inet", "flow", "tcp", 5000, "10.0.0.1", "10.0.0.2"),
        SetEntry("inet", "port", "udp", 53),
        SetEntry("inet6", "port", "tcp", 80, "fd00::1"),
        SetEntry("inet6", "send", "udp", 443),
    ],
)
def test_members_and_back(entry: SetEntry) -> None:
    found = members(entry)
    assert entries_from_members(entry.family, entry.kind, found) == [entry]


def test_wildcard_is_two_halves_and_a_lone_half_stands_for_nothing() -> None:
    halves = members(SetEntry("inet", "port", "udp", 53))
    assert halves == [("0.0.0.0", 1, 17, 53, ""), ("128.0.0.0", 1, 17, 53, "")]
    assert entries_from_members("inet", "port", halves[:1]) == []
    assert members(SetEntry("inet6", "send", "udp", 9))[1] == ("8000::", 1, 17, 9, "")


def test_canonical_entries_sort_dedupe_and_refuse_nonsense() -> None:
    a = SetEntry("inet6", "flow", "tcp", 1, "FD00::0001", "fd00::2")
    assert canonical_entries([a, a, SetEntry("inet", "port", "udp", 2)]) == (
        SetEntry("inet", "port", "udp", 2),
        SetEntry("inet6", "flow", "tcp", 1, "fd00::1", "fd00::2"),
    )
    for bad in (
        SetEntry("inet", "flow", "tcp", 1, "10.0.0.1"),  # no remote
        SetEntry("inet", "port", "udp", 1, "fd00::1"),  # family
        SetEntry("inet", "port", "sctp", 1),
        SetEntry("inet", "port", "udp", 0),
        SetEntry("inet", "send", "udp", 1, "10.0.0.1"),
        SetEntry("inet", "other", "udp", 1),
    ):
        with pytest.raises(BadInput):
            canonical_entries([bad])
    rules = JailRules(
        "j", set_entries=(SetEntry("inet", "port", "udp", 2), SetEntry("inet", "port", "udp", 2))
    )
    assert canonical_rules(rules).set_entries == (SetEntry("inet", "port", "udp", 2),)


@pytest.mark.parametrize(
    "match",
    [
        Match("inet", match_set="docker-set", set_flags="src"),  # not netjail's
        Match("inet", match_set="nj6-web-p", set_flags="src,src"),  # another family's
        Match("inet", match_set="nj4-web-p", set_flags="src,dst,src,dst"),
        Match("inet", match_set="nj4-web-p"),
        Match("inet", match_set="nj4-" + "x" * 30 + "-p", set_flags="src,src"),
    ],
)
def test_only_netjails_sets_with_its_flags(match: Match) -> None:
    with pytest.raises(BadInput):
        canonical_match(match, "out")


def _with_set_match(layout_family: str, index: int, dim: int, flags: int, tail: bytes = b"") -> bytes:
    """A DROP entry with a revision-4 set match spliced in, as libxt_set writes it."""
    layout = IPV4 if layout_family == "inet" else IPV6
    entry = bytearray(build_entry(Match(layout_family), "DROP"))
    data = struct.pack("=HBB", index, dim, flags) + bytes(44)
    data = data[: 48 - len(tail)] + tail if tail else data
    match = struct.pack("=H", 80) + b"set".ljust(29, b"\0") + bytes([4]) + data
    target_offset, next_offset = struct.unpack_from("=HH", entry, layout.target_offset)
    entry[layout.size : layout.size] = match
    struct.pack_into("=HH", entry, layout.target_offset, target_offset + 80, next_offset + 80)
    return bytes(entry)


def test_set_match_decodes_to_its_index_and_flags() -> None:
    decoded = decode_entry(IPV4, _with_set_match("inet", 7, 3, 0b0110))
    assert decoded is not None
    assert decoded.match == Match("inet", match_set="#7", set_flags="src,src,dst")
    decoded6 = decode_entry(IPV6, _with_set_match("inet6", 0, 2, 0))
    assert decoded6 is not None and decoded6.match == Match("inet6", match_set="#0", set_flags="dst,dst")
    assert decode_entry(IPV4, _with_set_match("inet", 1, 2, 0b0111)) is None  # inverted
    assert decode_entry(IPV4, _with_set_match("inet", 1, 2, 0, tail=b"\1\0\0\0")) is None  # --return-nomatch
