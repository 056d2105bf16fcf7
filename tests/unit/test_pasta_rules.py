"""The rules of a netns jail linked by pasta (pure, apart from reading /proc/net/dev)."""

from __future__ import annotations

from netjail.backends.jails.rules import desired_rules
from netjail.backends.jails.state import JailState
from netjail.backends.jails.strategies.netns import NetnsState
from netjail.backends.launch.pasta import uplink_ifaces


def test_pasta_jail_is_selected_by_its_link_cgroup_and_never_forwards() -> None:
    jail = JailState(
        "pj",
        "netns",
        allow=["10.1.0.0/16", "[fd00::1]:53"],
        detail=NetnsState(link="pasta", pasta_cgroup="/nj/net-1/pj/link"),
    )
    rules = desired_rules(jail, {})
    assert rules is not None
    assert {(m.family, m.cgroup) for m in rules.out_selectors} == {
        ("inet", "/nj/net-1/pj/link"),
        ("inet6", "/nj/net-1/pj/link"),
    }
    assert rules.fwd_selectors == () and rules.fwd_allow == () and rules.in_selectors == ()
    ifaces = uplink_ifaces()
    assert "lo" not in ifaces
    # every RETURN names an interface other than lo: this host's own addresses (via lo) hit the DROP
    assert all(m.out_iface in ifaces for m in rules.out_allow)
    assert len(rules.out_allow) == len(ifaces) * (1 + 2)  # one prefix, one [v6]:port for tcp and udp
    assert {(m.dst, m.proto, m.dport) for m in rules.out_allow} == (
        {("10.1.0.0/16", None, None), ("fd00::1/128", "tcp", 53), ("fd00::1/128", "udp", 53)}
        if ifaces
        else set()
    )


def test_pasta_jail_with_a_mark_filters_what_arrives_for_pastas_sockets_by_the_allow_list() -> None:
    jail = JailState(
        "pm",
        "netns",
        allow=["10.1.0.0/16"],
        detail=NetnsState(link="pasta", pasta_cgroup="/nj/net-1/pm/link"),
        mark=0x3000000,
        mark_mask=0xFF000000,
    )
    rules = desired_rules(jail, {})
    assert rules is not None
    assert {(m.family, m.mark, m.mark_mask) for m in rules.in_selectors} == {
        ("inet", 0x3000000, 0xFF000000),
        ("inet6", 0x3000000, 0xFF000000),
    }
    ifaces = uplink_ifaces()
    # the source in place of the destination, never through lo (this host's own packets)
    assert {(m.src, m.in_iface) for m in rules.in_allow} == {("10.1.0.0/16", i) for i in ifaces}
    assert all(m.dst is None and m.out_iface is None for m in rules.in_allow)


def test_veth_and_loopback_only_jails_keep_their_rules() -> None:
    assert desired_rules(JailState("ln", "netns"), {}) is None
    veth = desired_rules(
        JailState("vj", "netns", allow=["10.1.0.0/16"], detail=NetnsState(link="veth", veth="nj-vj")), {}
    )
    assert veth is not None and veth.fwd_selectors and not veth.out_selectors
