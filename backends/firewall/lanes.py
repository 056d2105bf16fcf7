"""Lanes: selectors of one kind kept out of the dispatch chain every packet walks (pure).

A dispatch chain (NETJAIL-OUT, NETJAIL-IN) is walked by every packet of the machine, so what it
holds is paid by traffic that has nothing to do with any jail: 4,007 per-socket rules cut two
unrelated processes' small UDP packets to 0.06x of their rate (docs/firewall.md). Selectors
that grow with the number of jails or members go into a lane chain instead, reached through a
few gate rules that unjailed packets fail fast:

    NETJAIL-OUT:    -m cgroup --path /netjail/net-X -j NETJAIL-OUT-CG     (gate: one per root)
                    -j NETJAIL-OUT-MK                                      (gate)
    NETJAIL-OUT-CG: -m cgroup --path /netjail/net-X/web/1234.5 -j NJ-O-web (one per member)
    NETJAIL-OUT-MK: -m mark --mark 0x0/0xff000000 -j RETURN               (head: unmarked)
                    -m mark --mark 0x1000000/0xff000000 -j NJ-O-web        (one per jail)

    NETJAIL-IN:     -m cgroup --path /netjail/net-X -j NETJAIL-IN-CG      (gate: early demux)
                    -m mark --mark 0x0/0xffffff -j NETJAIL-IN-MK          (gate: no bits but ours)
    NETJAIL-IN-MK:  -m socket --nowildcard --restore-skmark -m mark --mark 0x0 -j RETURN
                    -m mark --mark 0x0/0xffffff -j MARK --set-xmark 0x0/0xff000000  (ours off)
                    -m socket --nowildcard --restore-skmark -m mark --mark 0x0 -j RETURN
                    -m mark --mark 0x1000000/0xff000000 -j NJ-I-web        (one per jail)
                    -j MARK --set-xmark 0x0/0xffffffff                     (tail)

An unjailed packet going out walks three rules (a cgroup gate, the mark gate, the head); coming
in, two gates and the socket lookup (early demux's, or one hash lookup).

Incoming packets carry no socket identity of their own: `--restore-skmark` copies the mark of
the socket the packet is for into the packet, for TCP and UDP (docs/kernel-facts.md #10). It
overwrites the packet's mark, so only packets carrying no bits but netjail's are looked up (a
mark someone else's rules set before netjail's is never touched); a packet whose socket has no
mark leaves at once, the others lose netjail's bits (over loopback a packet keeps its jailed
sender's mark, which says nothing about the receiver) and are looked up again, and the tail
puts 0 back on every packet the lookup marked, once the jail chains had their say.
`--nowildcard` also finds sockets bound to 0.0.0.0 / ::.

    NETJAIL-OUT:    -m set --match-set nj-gate src -j NETJAIL-OUT-FB        (gate, while needed)
    NETJAIL-OUT-FB: -m set --match-set nj4-web-f src,src,dst -j NJ-O-web   (per jail and set)

A gate only has to match a superset of its lane's selectors: a cgroup gate is an ancestor of the
member cgroups (xt_cgroup matches descendants), the mark head's mask is the union of the jails',
the fallback gate's set holds every local port of every jail's fallback sets (fallback_sets.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netjail.backends.firewall.base import DISPATCH, Match
from netjail.backends.firewall.fallback_sets import GATE, GATE_FLAGS

RuleKey = tuple[str, Match, str | None]  # as in plan.py: (target, match, comment)

ALL_BITS = 0xFFFFFFFF
CLEAR_MARK = "MARK"  # the one non-verdict target netjail writes: --set-xmark 0x0/0xffffffff


@dataclass(frozen=True, slots=True)
class Lane:
    chain: str
    direction: str
    kind: str  # "cgroup" | "mark" | "set"

    def takes(self, m: Match) -> bool:
        if self.kind == "cgroup":
            return m.cgroup is not None
        if self.kind == "set":
            return m.match_set is not None and m.match_set != GATE
        return m.mark is not None and not m.socket_mark

    def gates(self, family: str, body: Iterable[Match]) -> list[RuleKey]:
        """Rules in the direction's dispatch chain that lead into this lane (none while empty)."""
        body = list(body)
        if not body:
            return []
        if self.kind == "cgroup":
            return [(self.chain, Match(family, cgroup=root), None) for root in cgroup_roots(body)]
        if self.kind == "set":
            return [(self.chain, Match(family, match_set=GATE, set_flags=GATE_FLAGS[self.direction]), None)]
        if self.direction == "out":
            return [(self.chain, Match(family), None)]
        # packets carrying no bits but netjail's: unmarked, or sent by a jailed socket over lo
        return [(self.chain, Match(family, mark=0, mark_mask=ALL_BITS & ~_mask(body)), None)]

    def head(self, family: str, body: Iterable[Match]) -> list[RuleKey]:
        if self.kind != "mark":
            return []
        mask = _mask(body)
        if self.direction == "out":
            return [("RETURN", Match(family, mark=0, mark_mask=mask), None)] if mask else []
        # The lookup first: it overwrites the packet's mark whenever it finds the socket, so an
        # unjailed socket's packet (nearly all of them) leaves after this one rule. Then, for
        # the rest, netjail's bits off (a socket found with a mark gets it back from the second
        # lookup; a packet for no socket keeps a jailed sender's mark over lo otherwise, which
        # is no verdict on a receiver) and the lookup again: what the jail rules see is the
        # same as with one lookup after the MARK, at one rule less for unjailed traffic.
        ours_off = Match(family, mark=0, mark_mask=ALL_BITS & ~mask)
        lookup = Match(family, mark=0, mark_mask=ALL_BITS, socket_mark=True)
        return [("RETURN", lookup, None), (CLEAR_MARK, ours_off, None), ("RETURN", lookup, None)]

    def tail(self, family: str) -> list[RuleKey]:
        if self.kind == "mark" and self.direction == "in":
            return [(CLEAR_MARK, Match(family), None)]
        return []


def _mask(body: Iterable[Match]) -> int:
    mask = 0
    for m in body:
        mask |= m.mark_mask or 0
    return mask


LANES: dict[str, tuple[Lane, ...]] = {
    "out": (
        Lane(f"{DISPATCH['out']}-CG", "out", "cgroup"),
        Lane(f"{DISPATCH['out']}-MK", "out", "mark"),
        Lane(f"{DISPATCH['out']}-FB", "out", "set"),
    ),
    "in": (
        Lane(f"{DISPATCH['in']}-CG", "in", "cgroup"),
        Lane(f"{DISPATCH['in']}-MK", "in", "mark"),
        Lane(f"{DISPATCH['in']}-FB", "in", "set"),
    ),
    "fwd": (),
}


def lane_for(direction: str, m: Match) -> Lane | None:
    for lane in LANES[direction]:
        if lane.takes(m):
            return lane
    return None


def lane_chains() -> set[str]:
    return {lane.chain for lanes in LANES.values() for lane in lanes}


def cgroup_root(path: str) -> str:
    """The gate for one member cgroup `/<parent>/net-<ns>/<jail>/<member>`: its jail's parent.
    Any ancestor would be correct; the nearest common one keeps unjailed sockets out."""
    parts = path.strip("/").split("/")
    return "/" + "/".join(parts[:-2]) if len(parts) > 2 else path


def cgroup_roots(body: Iterable[Match]) -> list[str]:
    """The fewest gates covering every cgroup selector: roots below another root are dropped."""
    roots = sorted({cgroup_root(m.cgroup) for m in body if m.cgroup is not None})
    kept: list[str] = []
    for r in roots:  # sorted: an ancestor comes before its descendants
        if not any(r == k or r.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(r)
    return kept
