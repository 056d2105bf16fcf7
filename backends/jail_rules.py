"""From a jail's registry entry and its members' sockets to the `JailRules` the firewall syncs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.model import AllowEntry, Socket
from netjail.backends.policy import parse_allow
from netjail.backends.socket_rules import selectors_for_all
from netjail.backends.state import JailState

FAMILIES = ("inet", "inet6")


def allow_matches(
    entries: Iterable[AllowEntry], loopback: bool
) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
    """(out, in) RETURN matches: the remote end is the destination going out, the source coming in."""
    out: list[Match] = []
    inn: list[Match] = []
    if loopback:
        for fam in FAMILIES:
            out.append(Match(fam, out_iface="lo"))
            inn.append(Match(fam, in_iface="lo"))
    for e in entries:
        if e.port is None:
            out.append(Match(e.family, dst=e.cidr))
            inn.append(Match(e.family, src=e.cidr))
            continue
        for proto in ("tcp", "udp"):
            out.append(Match(e.family, proto, dst=e.cidr, dport=e.port))
            inn.append(Match(e.family, proto, src=e.cidr, sport=e.port))
    return tuple(out), tuple(inn)


def desired_rules(jail: JailState, sockets: Mapping[int, Iterable[Socket]]) -> JailRules:
    """Selectors: the jail's cgroup (OUTPUT; INPUT never matches by cgroup) plus every existing
    socket of its members; then the allow-list."""
    out_sel, in_sel = selectors_for_all(s for socks in sockets.values() for s in socks)
    cgroup_sel = tuple(Match(fam, cgroup=jail.cgroup) for fam in FAMILIES) if jail.cgroup else ()
    out_allow, in_allow = allow_matches((parse_allow(a) for a in jail.allow), jail.allow_loopback)
    return JailRules(
        name=jail.name,
        out_selectors=cgroup_sel + out_sel,
        in_selectors=in_sel,
        out_allow=out_allow,
        in_allow=in_allow,
    )


def allow_from_rules(rules: JailRules) -> tuple[list[str], bool]:
    """Recover the allow-list from rules read back from the kernel (state rebuilt from it)."""
    entries: list[str] = []
    loopback = False
    for m in rules.out_allow:
        if m.out_iface == "lo":
            loopback = True
        elif m.dst:
            text = str(AllowEntry(m.dst, m.dport))
            if text not in entries:
                entries.append(text)
    return entries, loopback
