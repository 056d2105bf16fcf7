"""The nftables backend's pure parts: names, the text of matches, what goes in sets and what
stays a rule, the listing decoder (on JSON the kernel printed) and the generation id parser."""

from __future__ import annotations

import struct

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.firewall.base import JailRules, Match, SetEntry
from netjail.backends.firewall.matches import canonical_rules
from netjail.backends.firewall.nft_counters import counters_by_jail
from netjail.backends.firewall.nft_decode import decode_match, read_jail
from netjail.backends.firewall.nft_genid import parse_genid
from netjail.backends.firewall.nft_plan import (
    Held,
    cgroup_element,
    jail_part,
    match_text,
    parse_listing,
    plan,
    shared_map,
    tag,
)


def rules(**kw: object) -> JailRules:
    return canonical_rules(JailRules("web", **kw))  # type: ignore[arg-type]


def test_nested_allow_entries_do_not_share_an_interval_set() -> None:
    # an interval set refuses overlapping elements: the inner prefix becomes a rule of its own
    part = jail_part(
        rules(out_allow=(Match("inet", dst="10.0.0.0/8"), Match("inet", dst="10.1.0.0/16"))), "", log=False
    )
    assert part.sets["nj-web-o-a4"][1] == {"10.0.0.0/8"}
    assert any("ip daddr 10.1.0.0/16 counter" in r for r in part.chains["nj-o-web"])


def test_same_prefix_on_two_ports_shares_the_port_set() -> None:
    allow = (
        Match("inet", "tcp", dst="10.0.0.0/8", dport=443),
        Match("inet", "udp", dst="10.0.0.0/8", dport=53),
    )
    part = jail_part(rules(out_allow=allow), "", log=False)
    assert part.sets["nj-web-o-p4"][1] == {"10.0.0.0/8 . 6 . 443", "10.0.0.0/8 . 17 . 53"}


def test_drop_rules_end_every_chain_and_the_log_comes_before_them() -> None:
    part = jail_part(rules(out_selectors=(Match("inet", uid_owner=7),)), "", log=True)
    body = part.chains["nj-o-web"]
    assert body[-2:] == [
        'meta nfproto ipv4 counter name "nj-web-drop4" drop',
        'meta nfproto ipv6 counter name "nj-web-drop6" drop',
    ]
    assert body[-3].startswith("limit rate 200/second burst 400 packets log prefix") and "group" in body[-3]
    assert part.base_rules["output"] == ["meta nfproto ipv4 meta skuid 7 jump nj-o-web"]
    assert "nj-f-web" not in part.chains  # no forward chain without forward selectors


def test_cgroups_and_marks_go_into_shared_maps_by_level_and_mask() -> None:
    sel = (
        Match("inet", cgroup="/netjail/net-1/web/42.7"),
        Match("inet6", cgroup="/netjail/net-1/web/42.7"),
        Match("inet", mark=0x1000000, mark_mask=0xFF000000),
        Match("inet6", mark=0x1000000, mark_mask=0xFF000000),
    )
    part = jail_part(rules(out_selectors=sel, in_selectors=sel), "unified", log=False)
    assert part.elements["out-cg-4"] == {'"unified/netjail/net-1/web/42.7"': "jump nj-o-web"}
    assert part.elements["in-mark-ff000000"] == {str(0x1000000): "jump nj-i-web"}
    assert shared_map("in-mark-ff000000")[1] == "socket mark & 0xff000000 vmap @in-mark-ff000000"  # type: ignore[index]
    assert shared_map("out-cg-4")[1] == "socket cgroupv2 level 4 vmap @out-cg-4"  # type: ignore[index]
    assert shared_map("nj-web-o-a4") is None and shared_map("out-cg-") is None
    assert not part.base_rules  # nothing per member in the chains every packet walks


def test_a_selector_of_one_family_is_a_rule_of_its_own() -> None:
    # a map element selects both families: what one family alone wants cannot go there
    sel = (Match("inet", mark=0x1000000, mark_mask=0xFF000000), Match("inet6", cgroup="/a/b"))
    part = jail_part(rules(out_selectors=sel), "", log=False)
    assert not part.elements
    assert part.base_rules["output"] == [
        "meta nfproto ipv4 meta mark & 0xff000000 == 0x1000000 jump nj-o-web",
        'meta nfproto ipv6 socket cgroupv2 level 2 "a/b" jump nj-o-web',
    ]


def test_cgroup_paths_are_named_below_sys_fs_cgroup() -> None:
    assert cgroup_element("/a/b", "") == '"a/b"'
    assert cgroup_element("/a/b", "unified") == '"unified/a/b"'
    with pytest.raises(BadInput):
        cgroup_element('/a/"; flush ruleset; "', "")


def test_interface_names_that_would_break_out_of_a_string_are_refused() -> None:
    with pytest.raises(BadInput):
        match_text(Match("inet", in_iface='x" accept'), "in")


def test_incoming_marks_test_the_receiving_socket() -> None:
    assert match_text(Match("inet", "udp", dport=53, mark=1, mark_mask=1), "in").endswith(
        "socket mark & 0x1 == 0x1"
    )
    assert match_text(Match("inet", mark=1, mark_mask=1), "fwd").endswith("meta mark & 0x1 == 0x1")


def test_nothing_wanted_and_no_table_plans_nothing() -> None:
    assert plan(None, {}) == []
    assert plan(None, {"web": None}) == []
    held = parse_listing([{"chain": {"name": "nj-o-web"}}, {"chain": {"name": "output"}}])
    assert plan(held, {"web": None}) == ["delete table inet netjail"]


def test_a_new_jail_is_one_transaction_in_dependency_order() -> None:
    part = jail_part(
        rules(out_selectors=(Match("inet", uid_owner=7),), out_allow=(Match("inet", dst="10.0.0.0/8"),)),
        "",
        log=False,
    )
    cmds = plan(None, {"web": part})
    assert cmds[0] == "add table inet netjail"
    at = {c.split(" {")[0]: i for i, c in enumerate(cmds)}
    assert at["add chain inet netjail nj-o-web"] < at["add set inet netjail nj-web-o-a4"]
    rule = next(i for i, c in enumerate(cmds) if c.startswith("add rule inet netjail output"))
    assert rule > at["add chain inet netjail nj-o-web"]
    assert all(
        f'comment "{tag(c.split(" ", 5)[5].rsplit(" comment ", 1)[0])}"' in c
        for c in cmds
        if c.startswith("add rule")
    )


def test_a_users_rule_in_netjails_base_chain_is_removed() -> None:
    held = parse_listing(
        [
            {"chain": {"name": "output"}},
            {"chain": {"name": "nj-o-other"}},
            {"rule": {"chain": "output", "handle": 9, "expr": [{"accept": None}]}},
        ]
    )
    assert "delete rule inet netjail output handle 9" in plan(held, {"web": None})


# JSON exactly as libnftables 1.0.6 listed these rules (numeric protocol and symbol output)
TCP6 = [
    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
    {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
            "right": {"prefix": {"addr": "fd00::", "len": 64}},
        }
    },
    {"jump": {"target": "nj-o-web"}},
]
UDP4 = [
    {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": 2}},
    {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": 17}},
    {"jump": {"target": "nj-o-web"}},
]
NDP = [
    {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": 135}},
    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth0"}},
    {"jump": {"target": "nj-i-web"}},
]


def test_decoding_restores_what_nft_prints_without_its_implied_dependencies() -> None:
    assert decode_match(TCP6, "out") == Match("inet6", "tcp", dst="fd00::/64", dport=80)
    assert decode_match(UDP4, "out") == Match("inet", "udp")
    assert decode_match(NDP, "in") == Match("inet6", "icmpv6", in_iface="veth0", icmp6_type=135)
    assert (
        decode_match([{"match": {"op": "!=", "left": {"meta": {"key": "skuid"}}, "right": 1}}], "out") is None
    )
    assert decode_match([{"masquerade": None}], "out") is None


def test_read_jail_from_a_listing() -> None:
    listing = [
        {"chain": {"name": "output"}},
        {"chain": {"name": "nj-o-web"}},
        {
            "map": {
                "name": "out-mark-ff000000",
                "type": "mark",
                "map": "verdict",
                "elem": [[16777216, {"jump": {"target": "nj-o-web"}}]],
            }
        },
        {
            "map": {
                "name": "out-cg-2",
                "type": "cgroupsv2",
                "map": "verdict",
                "elem": [
                    ["unified/a/b", {"jump": {"target": "nj-o-web"}}],
                    [908685, {"jump": {"target": "nj-o-web"}}],
                ],
            }
        },
        {
            "set": {
                "name": "nj4-web-p",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "flags": ["interval"],
                "elem": [{"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, 17, 5353]}],
            }
        },
        {
            "set": {
                "name": "nj-web-o-p4",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "flags": ["interval"],
                "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, 6, 443]}],
            }
        },
        {
            "rule": {
                "chain": "output",
                "handle": 3,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "concat": [
                                    {"payload": {"protocol": "ip", "field": "saddr"}},
                                    {"meta": {"key": "l4proto"}},
                                    {"payload": {"protocol": "th", "field": "sport"}},
                                ]
                            },
                            "right": "@nj4-web-p",
                        }
                    },
                    {"jump": {"target": "nj-o-web"}},
                ],
            }
        },
        {
            "rule": {
                "chain": "nj-o-web",
                "handle": 4,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "concat": [
                                    {"payload": {"protocol": "ip", "field": "daddr"}},
                                    {"meta": {"key": "l4proto"}},
                                    {"payload": {"protocol": "th", "field": "dport"}},
                                ]
                            },
                            "right": "@nj-web-o-p4",
                        }
                    },
                    {"counter": "nj-web-allow4"},
                    {"return": None},
                ],
            }
        },
        {"rule": {"chain": "nj-o-web", "handle": 5, "expr": [{"counter": "nj-web-drop4"}, {"drop": None}]}},
    ]
    got = read_jail(parse_listing(listing), "web", "unified")
    assert got is not None
    assert set(got.out_selectors) == {
        Match("inet", mark=16777216, mark_mask=0xFF000000),
        Match("inet6", mark=16777216, mark_mask=0xFF000000),
        Match("inet", cgroup="/a/b"),  # the cgroup listed by id only is gone: not read back
        Match("inet6", cgroup="/a/b"),
        Match("inet", match_set="nj4-web-p", set_flags="src,src"),
    }
    assert got.out_allow == (Match("inet", "tcp", dst="10.0.0.0/8", dport=443),)
    assert got.set_entries == (SetEntry("inet", "port", "udp", 5353),)
    assert parse_listing(listing).sets["out-cg-2"].stale
    assert read_jail(Held(), "web", "") is None


def test_counters_split_by_the_fixed_suffix_whatever_the_jail_name() -> None:
    found = counters_by_jail(
        {"nj-a-drop4-drop4": (3, 300), "nj-a-drop4": (1, 10), "nj-a-allow6": (2, 20), "x": (9, 9)}
    )
    assert found["a-drop4"][:2] == [3, 300]
    assert found["a"] == [1, 10, 0, 0, 0, 0, 2, 20]
    assert "x" not in found


def test_generation_id_reply() -> None:
    attr = struct.pack("=HH", 8, 1) + struct.pack("!I", 4242)
    body = struct.pack("=BBH", 0, 0, 0) + attr
    msg = struct.pack("=IHHII", 16 + len(body), (10 << 8) | 15, 0, 1, 0) + body
    assert parse_genid(msg) == 4242
    assert parse_genid(struct.pack("=IHHII", 16, 2, 0, 1, 0)) is None  # an error reply
