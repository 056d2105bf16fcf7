"""Fallback sets against the real kernel (private netns): one set rule per set and direction,
members diffed on re-sync (counters and unrelated members untouched, no gap), sets created
before and destroyed after the rules that use them, none left by remove_jail and reset, and
the set index a rule holds read back as the set's name even when indices moved."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from netjail.backends.firewall.base import JailRules, SetEntry
from netjail.backends.firewall.fallback_sets import selectors_for_sets
from netjail.backends.firewall.iptc_backend import IptcFirewall
from netjail.backends.firewall.matches import canonical_rules
from pyroute2.ipset import IPSet

from tests.integration.test_firewall import AF, LOOPBACK, drain, flush_all, ours, save, udp_pair

# kernel ipsets and the set index an xtables rule holds
pytestmark = pytest.mark.backend("iptables")


@pytest.fixture
def fw() -> Iterator[IptcFirewall]:
    flush_all()
    firewall = IptcFirewall()
    yield firewall
    firewall.reset()
    flush_all()
    with IPSet() as s:
        for m in list(s.list(flags=1 << 1)):
            s.destroy(m.get_attr("IPSET_ATTR_SETNAME"))


def sets() -> set[str]:
    with IPSet() as s:
        return {str(m.get_attr("IPSET_ATTR_SETNAME")) for m in s.list(flags=1 << 1)}


def members(name: str) -> int:
    with IPSet() as s:
        return sum(len(m.get_attr("IPSET_ATTR_ADT").get_attrs("IPSET_ATTR_DATA")) for m in s.list(name))


def gate_ports() -> set[int]:
    with IPSet() as s:
        return {
            int(d.get_attr("IPSET_ATTR_PORT_FROM"))
            for m in s.list("nj-gate")
            for d in m.get_attr("IPSET_ATTR_ADT").get_attrs("IPSET_ATTR_DATA")
        }


def test_traffic_of_no_jail_stops_at_the_gate(fw: IptcFirewall) -> None:
    """One set lookup for everything else: a datagram to a port no jail's set holds never
    enters the fallback lane, whatever the number of jails with sets."""
    rx, tx, port = udp_pair("inet")
    with rx, tx:
        fw.sync_jails([jail(f"g{i}", SetEntry("inet", "port", "udp", 20000 + i)) for i in range(20)])
        tx.sendto(b"x", ("127.0.0.1", port))
        assert drain(rx) == 1
        lines = save("inet", counters=True)
        gate = next(ln for ln in lines if "-j NETJAIL-IN-FB" in ln)
        assert gate.startswith("[0:0] ") and sum("-j NETJAIL-IN-FB" in ln for ln in lines) == 1, lines
        assert sum(ln.startswith("[") and " -A NETJAIL-IN-FB " in ln for ln in lines) == 20


def jail(name: str, *entries: SetEntry) -> JailRules:
    out, inn = selectors_for_sets(name, entries)
    return JailRules(name, out_selectors=out, in_selectors=inn, set_entries=entries)


def bound_udp(family: str) -> socket.socket:
    s = socket.socket(AF[family], socket.SOCK_DGRAM)
    s.bind((LOOPBACK[family], 0))
    s.setblocking(False)
    return s


@pytest.mark.parametrize("family", ["inet", "inet6"])
def test_set_members_are_dropped_both_ways_others_pass(fw: IptcFirewall, family: str) -> None:
    rx, tx, port = udp_pair(family)
    neighbour = bound_udp(family)
    sender = bound_udp(family)
    with rx, tx, neighbour, sender:
        sport = sender.getsockname()[1]
        # rx: a listener on the wildcard address (two /1 halves); sender: what it sends
        fw.sync_jail(
            jail("fb", SetEntry(family, "port", "udp", port), SetEntry(family, "send", "udp", sport))
        )
        tx.sendto(b"in", (LOOPBACK[family], port))
        tx.sendto(b"in", neighbour.getsockname()[:2])
        with pytest.raises(PermissionError):
            sender.sendto(b"out", neighbour.getsockname()[:2])
        assert drain(rx) == 0 and drain(neighbour) == 1
        c = fw.counters()["fb"]
        part = c.inet if family == "inet" else c.inet6
        assert part.dropped_packets == 2
        assert canonical_rules(fw.read_jail("fb")) == canonical_rules(  # type: ignore[arg-type]
            jail("fb", SetEntry(family, "port", "udp", port), SetEntry(family, "send", "udp", sport))
        )


def test_flow_entry_matches_one_connection_both_ways(fw: IptcFirewall) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b = socket.create_connection(server.getsockname())
        a_peer, _ = server.accept()
        b_peer, _ = server.accept()
        with a, b, a_peer, b_peer:
            local, lport = a.getsockname()
            fw.sync_jail(jail("flow", SetEntry("inet", "flow", "tcp", lport, local, "127.0.0.1")))
            for s in (a, b, a_peer, b_peer):
                s.settimeout(0.5)
            a.send(b"a")  # out, dropped (the kernel retransmits later: not within the test)
            a_peer.send(b"A")  # in, dropped
            b.send(b"b")
            b_peer.send(b"B")
            assert b_peer.recv(10) == b"b" and b.recv(10) == b"B"
            for s in (a, a_peer):
                with pytest.raises(TimeoutError):
                    s.recv(10)
            assert len([ln for ln in ours("inet") if "--match-set nj4-flow-f" in ln]) == 2


def test_resync_diffs_members_and_keeps_counters_without_a_gap(fw: IptcFirewall) -> None:
    """Members come and go by difference: while 30 re-syncs change other members, a socket
    that stays in the set never receives a single one of the datagrams sent meanwhile, and the
    set rule and DROP keep their counters."""
    rx, tx, port = udp_pair("inet")
    with rx, tx:
        kept = SetEntry("inet", "port", "udp", port, "127.0.0.1")
        fw.sync_jail(jail("diff", kept))
        tx.sendto(b"x", ("127.0.0.1", port))
        counted = [ln for ln in save("inet", counters=True) if "nj4-diff-p dst,dst" in ln]
        assert counted and counted[0].startswith("[1:"), counted
        stop = threading.Event()
        sent = 0

        def flood() -> None:
            nonlocal sent
            while not stop.is_set():
                tx.sendto(b"y", ("127.0.0.1", port))
                sent += 1

        t = threading.Thread(target=flood)
        t.start()
        try:
            for i in range(30):
                extra = tuple(SetEntry("inet", "port", "tcp", 1000 + j) for j in range(i % 4))
                fw.sync_jail(jail("diff", kept, *extra))
                assert members("nj4-diff-p") == 1 + 2 * (i % 4)  # a wildcard entry is two halves
        finally:
            stop.set()
            t.join()
        assert sent > 100 and drain(rx) == 0
        fw.sync_jail(jail("diff", kept))
        line = next(ln for ln in save("inet", counters=True) if "nj4-diff-p dst,dst" in ln)
        assert int(line[1:].split(":")[0]) == sent + 1  # the same rule, counting all along


def test_sets_follow_their_rules_and_none_outlive_remove_or_reset(fw: IptcFirewall) -> None:
    with IPSet() as s:
        s.create("someone-elses", stype="hash:ip")  # not netjail's: reset leaves it
    flow = SetEntry("inet", "flow", "tcp", 5000, "127.0.0.1", "127.0.0.2")
    port6 = SetEntry("inet6", "port", "tcp", 80, "::1")
    fw.sync_jail(jail("life", flow, port6))
    assert sets() == {"someone-elses", "nj4-life-f", "nj6-life-p", "nj-gate"}
    assert gate_ports() == {5000, 80}
    fw.sync_jail(jail("life", port6))  # the flow set's rules went, then the set
    assert sets() == {"someone-elses", "nj6-life-p", "nj-gate"} and gate_ports() == {80}
    assert not [ln for ln in ours("inet") if "match-set" in ln]  # no IPv4 set left: no lane
    assert "-A NETJAIL-IN -m set --match-set nj-gate dst -j NETJAIL-IN-FB" in ours("inet6")
    fw.remove_jail("life")
    assert sets() == {"someone-elses"}
    fw.sync_jails([jail("r1", flow), jail("r2", port6)])
    fw.reset()
    assert sets() == {"someone-elses"}
    assert ours("inet") == [] and ours("inet6") == []


def test_set_index_is_read_back_as_the_sets_name_after_indices_moved(fw: IptcFirewall) -> None:
    """Rules hold a set's index: after sets were destroyed and others made, a rule is still read
    back (and kept by a re-sync) under the name of the set it really points to."""
    a = SetEntry("inet", "port", "udp", 53, "127.0.0.1")
    b = SetEntry("inet", "port", "udp", 54, "127.0.0.1")
    fw.sync_jails([jail("ia", a), jail("ib", b)])
    fw.remove_jail("ia")  # frees the lowest index
    fw.sync_jail(jail("ic", a))  # takes it, under another name
    fw.sync_jail(jail("ia", b))
    for name, entry in (("ib", b), ("ic", a), ("ia", b)):
        assert canonical_rules(fw.read_jail(name)) == canonical_rules(jail(name, entry))  # type: ignore[arg-type]
    before = [ln for ln in save("inet", counters=True) if " -A " in ln]
    fw.sync_jails([jail("ib", b), jail("ic", a), jail("ia", b)])
    assert [ln for ln in save("inet", counters=True) if " -A " in ln] == before
