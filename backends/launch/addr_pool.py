"""Addresses for a jail's veth link: one block per jail from a private pool, chosen so it does
not overlap anything already routed in the namespace netjail runs in (pure: no kernel access).

Block N (0-255): 10.231.N.0/30 (host side .1, netns side .2) and fd00:231:N::/64 (::1, ::2).
A /30 is all a point-to-point link needs; the pool is small on purpose so `ip addr` stays
readable, and 256 jails with a network link at once is plenty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from netjail.backends.errors import OperationFailed

POOL_SIZE = 256
POOL4 = "10.231.0.0/16"
POOL6 = "fd00:231::/32"


@dataclass(frozen=True, slots=True)
class VethAddresses:
    index: int
    prefix4: str  # "10.231.N.0/30"
    host4: str
    ns4: str
    prefix6: str  # "fd00:231:N::/64"
    host6: str
    ns6: str

    @property
    def prefixes(self) -> tuple[str, str]:
        return (self.prefix4, self.prefix6)


def block(n: int) -> VethAddresses:
    if not 0 <= n < POOL_SIZE:
        raise ValueError(f"address block {n} outside the pool (0-{POOL_SIZE - 1})")
    net4 = ipaddress.IPv4Network(f"10.231.{n}.0/30")
    net6 = ipaddress.IPv6Network(f"fd00:231:{n:x}::/64")
    return VethAddresses(
        index=n,
        prefix4=str(net4),
        host4=str(net4[1]),
        ns4=str(net4[2]),
        prefix6=str(net6),
        host6=str(net6[1]),
        ns6=str(net6[2]),
    )


def _networks(prefixes: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for p in prefixes:
        try:
            net = ipaddress.ip_network(p, strict=False)
        except ValueError:
            continue
        if net.prefixlen:  # a default route overlaps everything and says nothing
            out.append(net)
    return out


def pick_free(taken: Iterable[str]) -> VethAddresses:
    """The first block overlapping none of `taken` (routed prefixes and addresses, as CIDR text;
    default routes are ignored)."""
    nets = _networks(taken)
    nets4 = [n for n in nets if n.version == 4]
    nets6 = [n for n in nets if n.version == 6]
    for n in range(POOL_SIZE):
        b = block(n)
        net4 = ipaddress.IPv4Network(b.prefix4)
        net6 = ipaddress.IPv6Network(b.prefix6)
        if not any(net4.overlaps(t) for t in nets4) and not any(net6.overlaps(t) for t in nets6):
            return b
    raise OperationFailed(
        f"no free address block for a jail's veth link: routes here cover all of {POOL4} / {POOL6}"
    )


def index_of(prefix4: str) -> int | None:
    """The block number of a pool prefix ("10.231.7.0/30" -> 7), None when not from the pool."""
    try:
        net = ipaddress.IPv4Network(prefix4)
    except ValueError:
        return None
    for n in range(POOL_SIZE):
        if block(n).prefix4 == str(net):
            return n
    return None
