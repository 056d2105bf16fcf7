"""From a jail's registry entry and its members' sockets to the `JailRules` the firewall syncs."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.firewall.fallback_sets import selectors_for_sets
from netjail.backends.jails import accept_queue
from netjail.backends.jails.policy import parse_allow
from netjail.backends.jails.socket_rules import set_entries_for_all
from netjail.backends.jails.state import JailState
from netjail.backends.model import AllowEntry, Socket

FAMILIES = ("inet", "inet6")


def allow_matches(
    entries: Iterable[AllowEntry], loopback: bool
) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
    """(out, in) RETURN matches: the remote end is the destination going out, the source coming in."""
    out: list[Match] = []
    inn: list[Match] = []
    if loopback:  # localhost as systemd means it: 127.0.0.0/8 and ::1, not every address via lo
        for fam, net in (("inet", "127.0.0.0/8"), ("inet6", "::1/128")):
            out.append(Match(fam, dst=net, out_iface="lo"))
            inn.append(Match(fam, src=net, in_iface="lo"))
    for e in entries:
        if e.port is None:
            out.append(Match(e.family, dst=e.cidr))
            inn.append(Match(e.family, src=e.cidr))
            continue
        for proto in ("tcp", "udp"):
            out.append(Match(e.family, proto, dst=e.cidr, dport=e.port))
            inn.append(Match(e.family, proto, src=e.cidr, sport=e.port))
    return tuple(out), tuple(inn)


def desired_rules(
    jail: JailState, sockets: Mapping[int, Iterable[Socket]], unseen: Collection[int] = ()
) -> JailRules | None:
    """The rules one jail needs, by its strategy (None: netfilter has no part in it, seccomp)."""
    from netjail.backends.jails.strategies import strategy

    return strategy(jail.strategy).desired_rules(jail, sockets, unseen)


def address_rules(
    jail: JailState,
    sockets: Mapping[int, Iterable[Socket]],
    unseen: Collection[int],
    owners: tuple[Match, ...],
    in_sel: tuple[Match, ...],
) -> JailRules:
    """The rules of a jail whose strategy's selectors (`owners` going out, `in_sel` coming in:
    Strategy.selectors) say who is jailed, completed by the sockets they cannot see.

    Selectors say who is jailed: the cgroup (OUTPUT only: INPUT never matches by cgroup) and
    the jail's socket mark (both ways; see jail_marks for which sockets carry it), the
    owner uid/gid (OUTPUT only, xt_owner), the netns link (FORWARD both ways, and everything it
    sends to this host), plus sockets the first selector cannot see: those the members already
    had when they were jailed (`jail.pre_inodes`), those created outside the jail that a member
    holds now (`unseen`, by inode: see socket_cgroups) and every listener or bound UDP socket
    (INPUT), unless they carry the jail's mark. A connected socket opened inside the jail needs
    none: the first selector drops all it sends. Then the allow-list.
    """
    entries = [parse_allow(a) for a in jail.allow]
    pre = set(jail.pre_inodes).union(unseen)
    # a marked socket is matched by its mark, every packet of it both ways (lanes.py): address
    # selectors for it would only cost every packet of the machine
    marked = {inode for inode, _ in jail.marks}
    chosen = [
        s
        for socks in sockets.values()
        for s in socks
        if s.inode not in marked and (s.inode in pre or serves(s))
    ]
    # sockets that could not be marked: one set lookup per direction and kind, whatever their
    # number (fallback_sets), never one rule each
    set_entries = set_entries_for_all(chosen)
    if jail.queued:  # connections a listener's queue held, not marked yet (accept_queue)
        set_entries = tuple(dict.fromkeys(set_entries + tuple(accept_queue.entries(jail))))
    out_sel, in_sets = selectors_for_sets(jail.name, set_entries)
    out_allow, in_allow = allow_matches(entries, jail.allow_loopback)
    return JailRules(
        name=jail.name,
        out_selectors=owners + out_sel,
        in_selectors=in_sets + in_sel,
        out_allow=out_allow,
        in_allow=in_allow,
        set_entries=set_entries,
    )


def serves(sock: Socket) -> bool:
    """Listening TCP, or UDP without a peer: reachable from outside whoever created it."""
    return sock.state == "LISTEN" or (sock.proto == "udp" and sock.remote_port == 0)


# IPv6 neighbour discovery a host on the link sends: router and neighbour solicitations and
# neighbour advertisements. Without them the jail cannot resolve its IPv6 gateway (this host):
# measured, its connections over IPv6 then fail with EHOSTUNREACH.
NDP_TYPES = (133, 135, 136)


def netns_rules(jail: JailState, entries: list[AllowEntry]) -> JailRules | None:
    """A netns reaches the world only through its veth: what it forwards (both ways) passes its
    allow-list, and whatever it sends to this host's own addresses, in any protocol (UDP-Lite,
    SCTP, ICMP echo ... not only TCP/UDP: issue 8 finding 8), is dropped. The host itself is
    not the world the allow-list describes: an allowed prefix that happens to hold one of this
    host's addresses admits forwarded traffic only. The one exception is IPv6 neighbour
    discovery over the link, which the link needs (ARP is not IP: netfilter never sees it)."""
    from netjail.backends.jails.strategies.netns import netns_state

    ns = netns_state(jail)
    if ns.link == "pasta":
        return _pasta_rules(jail, entries)
    if not ns.veth:
        return None  # loopback only: there is nothing to filter or count
    v = ns.veth
    fwd_sel = tuple(Match(fam, in_iface=v) for fam in FAMILIES) + tuple(
        Match(fam, out_iface=v) for fam in FAMILIES
    )
    in_sel = tuple(Match(fam, in_iface=v) for fam in FAMILIES)
    in_allow = tuple(Match("inet6", "icmpv6", in_iface=v, icmp6_type=t) for t in NDP_TYPES)
    fwd_allow: list[Match] = []
    for e in entries:
        protos: tuple[str | None, ...] = (None,) if e.port is None else ("tcp", "udp")
        for proto in protos:
            fwd_allow.append(Match(e.family, proto, dst=e.cidr, dport=e.port, in_iface=v))
            fwd_allow.append(Match(e.family, proto, src=e.cidr, sport=e.port, out_iface=v))
    return JailRules(
        name=jail.name,
        in_selectors=in_sel,
        in_allow=in_allow,
        fwd_selectors=fwd_sel,
        fwd_allow=tuple(fwd_allow),
    )


def _pasta_rules(jail: JailState, entries: list[AllowEntry]) -> JailRules:
    """A netns linked by pasta reaches the world only through pasta's own sockets here, which
    are created in pasta's cgroup: OUTPUT selects them by it and the allow-list RETURNs what it
    may send; nothing is in FORWARD. Each RETURN also names an interface other than `lo`
    (every one this namespace has now): a packet for one of this host's own addresses leaves
    through `lo`, so it falls through to the DROP in any protocol, even when an allowed prefix
    holds such an address, as with the veth link. An interface added later drops the jail's
    traffic through it until the next reconciliation adds it (fail closed).

    Coming in: pasta keeps its UDP sockets unconnected, so any host could send to a port the
    jail sent from. Every socket pasta creates carries the jail's mark (sock_create_mark on its
    cgroup), so the incoming mark lane sends what arrives for them through the same allow-list,
    the source in place of the destination and `-i` in place of `-o`: this host's own packets
    arrive through `lo` and are dropped."""
    from netjail.backends.jails.strategies.netns import netns_state
    from netjail.backends.launch.pasta import uplink_ifaces  # launch code: pasta jails only

    sel = tuple(Match(fam, cgroup=netns_state(jail).pasta_cgroup) for fam in FAMILIES)
    ifaces = [i for i in uplink_ifaces() if _IFACE_NAME.fullmatch(i)]
    out_allow: list[Match] = []
    in_allow: list[Match] = []
    for e in entries:
        protos: tuple[str | None, ...] = (None,) if e.port is None else ("tcp", "udp")
        for proto in protos:
            out_allow += [Match(e.family, proto, dst=e.cidr, dport=e.port, out_iface=i) for i in ifaces]
            in_allow += [Match(e.family, proto, src=e.cidr, sport=e.port, in_iface=i) for i in ifaces]
    if not jail.mark:  # no mark on its sockets (the program could not be attached): out only
        return JailRules(name=jail.name, out_selectors=sel, out_allow=tuple(out_allow))
    in_sel = tuple(Match(fam, mark=jail.mark, mark_mask=jail.mark_mask) for fam in FAMILIES)
    return JailRules(
        name=jail.name,
        out_selectors=sel,
        in_selectors=in_sel,
        out_allow=tuple(out_allow),
        in_allow=tuple(in_allow),
    )


_IFACE_NAME = re.compile(r"[^\s/:'\"]{1,15}")  # what a rule may name (firewall/matches.py)


def allow_from_rules(rules: JailRules) -> tuple[list[str], bool]:
    """Recover the allow-list from rules read back from the kernel (state rebuilt from it)."""
    entries: list[str] = []
    loopback = False
    for m in rules.out_allow + tuple(f for f in rules.fwd_allow if f.in_iface):
        if m.out_iface == "lo":
            loopback = True
        elif m.dst:
            text = str(AllowEntry(m.dst, m.dport))
            if text not in entries:
                entries.append(text)
    return entries, loopback
