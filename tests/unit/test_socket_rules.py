from __future__ import annotations

from netjail.backends.firewall.base import Match
from netjail.backends.jails.socket_rules import selectors_for, selectors_for_all
from netjail.backends.model import Socket


def sock(family: str, proto: str, laddr: str, lport: int, raddr: str, rport: int, state: str) -> Socket:
    return Socket(family, proto, laddr, lport, raddr, rport, state, 1)


def test_established_tcp_gets_its_5_tuple_both_ways() -> None:
    out, inn = selectors_for(sock("inet", "tcp", "127.0.0.1", 40000, "127.0.0.2", 80, "ESTABLISHED"))
    assert out == [Match("inet", "tcp", "127.0.0.1/32", "127.0.0.2/32", 40000, 80)]
    assert inn == [Match("inet", "tcp", "127.0.0.2/32", "127.0.0.1/32", 80, 40000)]


def test_listener_on_dual_stack_wildcard_covers_both_families() -> None:
    out, inn = selectors_for(sock("inet6", "tcp", "::", 8080, "::", 0, "LISTEN"))
    assert inn == [Match("inet", "tcp", dport=8080), Match("inet6", "tcp", dport=8080)]
    assert out == [Match("inet", "tcp", sport=8080), Match("inet6", "tcp", sport=8080)]


def test_v4_listener_on_one_address() -> None:
    out, inn = selectors_for(sock("inet", "tcp", "10.0.0.1", 22, "0.0.0.0", 0, "LISTEN"))
    assert inn == [Match("inet", "tcp", dst="10.0.0.1/32", dport=22)]
    assert out == [Match("inet", "tcp", src="10.0.0.1/32", sport=22)]


def test_v4_mapped_peer_becomes_ipv4() -> None:
    out, _ = selectors_for(
        sock("inet6", "tcp", "::ffff:127.0.0.1", 5000, "::ffff:127.0.0.1", 6000, "ESTABLISHED")
    )
    assert out == [Match("inet", "tcp", "127.0.0.1/32", "127.0.0.1/32", 5000, 6000)]


def test_ipv6_udp_connected_and_bound() -> None:
    out, inn = selectors_for(sock("inet6", "udp", "fd00::1", 5353, "fd00::2", 53, "ESTABLISHED"))
    # going out only the local port: sendto() picks another peer, IP_PKTINFO another source
    assert out == [Match("inet6", "udp", sport=5353)]
    assert inn == [Match("inet6", "udp", "fd00::2/128", "fd00::1/128", 53, 5353)]
    out, inn = selectors_for(sock("inet6", "udp", "fd00::1", 5353, "::", 0, "UNCONN"))
    assert out == [Match("inet6", "udp", sport=5353)]
    assert inn == [Match("inet6", "udp", dst="fd00::1/128", dport=5353)]


def test_closing_tcp_without_peer_and_unbound_sockets_need_nothing() -> None:
    assert selectors_for(sock("inet", "tcp", "0.0.0.0", 0, "0.0.0.0", 0, "CLOSE")) == ([], [])
    assert selectors_for(sock("inet", "udp", "0.0.0.0", 0, "0.0.0.0", 0, "UNCONN")) == ([], [])


def test_all_deduplicates() -> None:
    s = sock("inet", "udp", "0.0.0.0", 9999, "0.0.0.0", 0, "UNCONN")
    out, inn = selectors_for_all([s, s])
    assert len(out) == 1 and len(inn) == 1
