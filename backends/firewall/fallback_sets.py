"""A jail's fallback sets: sockets that could not be marked, matched by one set lookup (pure).

Where `pidfd_getfd` is refused (kernel < 5.6, Yama ptrace_scope 3, no CAP_SYS_PTRACE) or a
socket carries a mark another program relies on, the socket keeps being matched by its
addresses, but through kernel ipsets rather than one rule per socket: per jail and family at most
three sets, each behind one rule per direction, whatever the number of sockets (hash lookups,
O(1) per packet):

    kind  set           type             out rule flags   in rule flags   holds
    flow  nj4-<jail>-f  hash:ip,port,ip  src,src,dst      dst,dst,src     connected sockets
    port  nj4-<jail>-p  hash:net,port    src,src          dst,dst         listeners, bound UDP
    send  nj4-<jail>-s  hash:net,port    src,src          (none)          UDP sockets sending

(`nj6-` for IPv6.) Each lookup costs about 150 ns per packet here (bench/fallback_sets.py), 30
plain rules' worth, so the set rules of every jail sit in a lane (NETJAIL-OUT-FB, NETJAIL-IN-FB)
behind one gate per direction: `-m set --match-set nj-gate src` (out) / `dst` (in), a
bitmap:port of every local port in any jail's sets, for both families. Traffic of no jail pays
that one lookup, whatever the number of jails and sockets, and only while some jail has a
fallback set. A set lookup that names a port only matches TCP, UDP, SCTP and UDP-Lite
packets of that protocol (the entry holds the protocol). hash:net,port refuses a /0 prefix, so a
socket bound to the wildcard address is stored as the two halves /1 of the address space.
A flow entry has no remote port (no ipset type holds two ports): another socket with the same
local address and port talking to the same remote host matches too, which only a socket bound
with SO_REUSEADDR to a port a jailed flow uses can be.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netjail.backends.errors import BadInput
from netjail.backends.firewall.base import Match, SetEntry

KINDS = ("flow", "port", "send")
GATE = "nj-gate"  # bitmap:port, family-agnostic: one set for the iptables and ip6tables gates
GATE_FLAGS = {"out": "src", "in": "dst"}
FAMILY_TAG = {"inet": "nj4", "inet6": "nj6"}
SET_PREFIXES = (*(f"{tag}-" for tag in FAMILY_TAG.values()), GATE)
IPSET_MAXNAMELEN = 32  # NUL included
_SUFFIX = {"flow": "f", "port": "p", "send": "s"}
SET_TYPE = {"flow": "hash:ip,port,ip", "port": "hash:net,port", "send": "hash:net,port"}
ETYPE = {"flow": "ip,port,ip", "port": "net,port", "send": "net,port"}
FLAGS: dict[str, dict[str, str]] = {
    "flow": {"out": "src,src,dst", "in": "dst,dst,src"},
    "port": {"out": "src,src", "in": "dst,dst"},
    "send": {"out": "src,src"},
}
VALID_FLAGS = {f for by_dir in FLAGS.values() for f in by_dir.values()}
HOST_BITS = {"inet": 32, "inet6": 128}
PROTO_NUMBERS = {"tcp": 6, "udp": 17}
_HALVES = {"inet": ("0.0.0.0", "128.0.0.0"), "inet6": ("::", "8000::")}

# One kernel member: (address, prefix length, protocol number, port, second address or "")
Member = tuple[str, int, int, int, str]


def gate_ports(entries: Iterable[SetEntry]) -> set[int]:
    return {e.port for e in entries}


def set_name(family: str, jail: str, kind: str) -> str:
    return f"{FAMILY_TAG[family]}-{jail}-{_SUFFIX[kind]}"


def jail_set_names(jail: str) -> set[str]:
    return {set_name(fam, jail, kind) for fam in FAMILY_TAG for kind in KINDS}


def set_kind(name: str) -> tuple[str, str] | None:
    """(family, kind) of one of netjail's set names, None for any other name."""
    for fam, tag in FAMILY_TAG.items():
        for kind, suffix in _SUFFIX.items():
            if name.startswith(f"{tag}-") and name.endswith(f"-{suffix}") and len(name) > 6:
                return fam, kind
    return None


def selectors_for_sets(jail: str, entries: Iterable[SetEntry]) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
    """(out, in) selectors: one per set in use and direction, whatever the number of entries."""
    used = sorted({(e.family, e.kind) for e in entries})
    out: list[Match] = []
    inn: list[Match] = []
    for fam, kind in used:
        name = set_name(fam, jail, kind)
        out.append(Match(fam, match_set=name, set_flags=FLAGS[kind]["out"]))
        if "in" in FLAGS[kind]:
            inn.append(Match(fam, match_set=name, set_flags=FLAGS[kind]["in"]))
    return tuple(out), tuple(inn)


def _ip(value: str | None, family: str, what: str) -> str:
    try:
        ip = ipaddress.ip_address(value or "")
    except ValueError:
        raise BadInput(f"bad {what} address {value!r} in a fallback set entry") from None
    if (ip.version == 6) != (family == "inet6"):
        raise BadInput(f"{what} address {value} is not an {family} address")
    return str(ip)


def _entry_key(e: SetEntry) -> tuple[str, str, str, int, str, str]:
    return (e.family, e.kind, e.proto, e.port, e.local or "", e.remote or "")


def canonical_entry(e: SetEntry) -> SetEntry:
    if e.family not in FAMILY_TAG:
        raise BadInput(f"bad address family {e.family!r} in a fallback set entry")
    if e.kind not in KINDS:
        raise BadInput(f"bad fallback set kind {e.kind!r}")
    if e.proto not in PROTO_NUMBERS:
        raise BadInput(f"bad protocol {e.proto!r} in a fallback set entry (tcp or udp)")
    if isinstance(e.port, bool) or not isinstance(e.port, int) or not 0 < e.port <= 65535:
        raise BadInput(f"bad port {e.port!r} in a fallback set entry")
    if e.kind == "flow":
        return SetEntry(
            e.family,
            e.kind,
            e.proto,
            e.port,
            _ip(e.local, e.family, "local"),
            _ip(e.remote, e.family, "remote"),
        )
    if e.remote is not None:
        raise BadInput("a port entry of a fallback set has no remote address")
    if e.kind == "send" and e.local is not None:
        raise BadInput("a send entry of a fallback set matches any local address")
    local = None if e.local is None else _ip(e.local, e.family, "local")
    return SetEntry(e.family, e.kind, e.proto, e.port, local)


def canonical_entries(entries: Iterable[SetEntry]) -> tuple[SetEntry, ...]:
    unique = {canonical_entry(e) for e in entries}
    return tuple(sorted(unique, key=_entry_key))


def members(e: SetEntry) -> list[Member]:
    """The kernel members one canonical entry stands for (a wildcard bind: two /1 halves)."""
    proto = PROTO_NUMBERS[e.proto]
    host = HOST_BITS[e.family]
    if e.kind == "flow":
        return [(e.local or "", host, proto, e.port, e.remote or "")]
    if e.local is None:
        return [(half, 1, proto, e.port, "") for half in _HALVES[e.family]]
    return [(e.local, host, proto, e.port, "")]


def entries_from_members(family: str, kind: str, found: Iterable[Member]) -> list[SetEntry]:
    """Back from kernel members to entries; a lone /1 half or another prefix stands for nothing
    netjail wrote (the drift check then sees the entry it wanted missing)."""
    names = {num: name for name, num in PROTO_NUMBERS.items()}
    out: list[SetEntry] = []
    halves: dict[tuple[int, int], set[str]] = {}
    for addr, plen, proto, port, addr2 in found:
        if proto not in names:
            continue
        if kind == "flow":
            out.append(SetEntry(family, kind, names[proto], port, addr, addr2))
        elif plen == HOST_BITS[family] and kind == "port":
            out.append(SetEntry(family, kind, names[proto], port, addr))
        elif plen == 1:
            halves.setdefault((proto, port), set()).add(str(ipaddress.ip_address(addr)))
    for (proto, port), got in halves.items():
        if got == set(_HALVES[family]):
            out.append(SetEntry(family, kind, names[proto], port))
    return out
