"""Validation and canonical form of `Match` / `JailRules` (pure: no kernel access).

Every backend compares what it wants with what it reads back, so both sides must be written the
same way: CIDRs as network/prefix ("10.0.0.1/32"), "match all" prefixes as None, cgroup paths
without trailing slashes, and each tuple de-duplicated and sorted. `canonical_rules` does that;
`canonical_rules(fw.read_jail(n)) == canonical_rules(wanted)` is the drift check.
"""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import re
from collections.abc import Iterable
from dataclasses import fields, replace
from typing import Any

from netjail.backends.errors import BadInput
from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.firewall.fallback_sets import (
    FAMILY_TAG,
    GATE,
    IPSET_MAXNAMELEN,
    VALID_FLAGS,
    canonical_entries,
    set_kind,
)
from netjail.backends.jails.names import check_jail_name

DIRECTIONS = ("out", "in", "fwd")
FAMILIES = ("inet", "inet6")
PROTOS = ("tcp", "udp", "icmpv6")
IFNAMSIZ = 16
CGROUP_PATH_MAX = 512  # XT_CGROUP_PATH_MAX of xt_cgroup revision 2, NUL included
_IFACE = re.compile(r"[^\s/:'\"]{1,15}")


def _cidr(value: str, family: str, what: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise BadInput(f"bad {what} address {value!r}") from None
    if (net.version == 6) != (family == "inet6"):
        raise BadInput(f"{what} {value} is not an {family} address")
    return None if net.prefixlen == 0 else str(net)


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise BadInput(f"bad {what} {value!r}: a port is an integer 0-65535")
    return value


def _id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32 - 1:
        raise BadInput(f"bad {what} {value!r}")
    return value


def _iface(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _IFACE.fullmatch(value):
        raise BadInput(f"bad {what} {value!r}: an interface name of 1-15 characters")
    return value


def _cgroup(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise BadInput(f"bad cgroup path {value!r}: absolute path inside the cgroup2 hierarchy")
    if "'" in value:  # python-iptables splits options shell-like: the rule would not load
        raise BadInput(f"cgroup path {value!r} holds a quote (') that iptables rules cannot carry")
    path = posixpath.normpath(value)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if len(path.encode()) >= CGROUP_PATH_MAX:
        raise BadInput(f"cgroup path too long ({len(path)} characters, at most {CGROUP_PATH_MAX - 1})")
    return path


@functools.lru_cache(maxsize=16384)
def canonical_match(m: Match, direction: str) -> Match:
    """Validated Match in canonical form; `direction` is where it will live ("out"/"in"/"fwd").

    Refuses what the kernel would refuse late (at commit) or silently never match: owner only on
    output, cgroup not on forward, an input interface on output and the reverse.
    """
    if m.family not in FAMILIES:
        raise BadInput(f"bad address family {m.family!r} (inet or inet6)")
    if m.proto is not None and m.proto not in PROTOS:
        raise BadInput(f"bad protocol {m.proto!r} (tcp, udp or icmpv6)")
    if (m.sport is not None or m.dport is not None) and m.proto not in ("tcp", "udp"):
        raise BadInput("a port needs a protocol (tcp or udp)")
    if m.proto == "icmpv6" and m.family != "inet6":
        raise BadInput("icmpv6 is an IPv6 protocol")
    if m.icmp6_type is not None and (m.proto != "icmpv6" or not 0 <= m.icmp6_type <= 255):
        raise BadInput(f"bad ICMPv6 type {m.icmp6_type!r}: 0-255, with protocol icmpv6")
    if (m.uid_owner is not None or m.gid_owner is not None) and direction != "out":
        raise BadInput("owner (uid/gid) matches work on outgoing traffic only")
    if m.cgroup is not None and direction == "fwd":
        raise BadInput("cgroup matches do not apply to forwarded traffic")
    if m.in_iface is not None and direction == "out":
        raise BadInput("an input interface cannot match outgoing traffic")
    if m.out_iface is not None and direction == "in":
        raise BadInput("an output interface cannot match incoming traffic")
    if m.socket_mark and direction != "in":
        raise BadInput("a socket's mark is looked up for incoming traffic only")
    if (m.mark is None) != (m.mark_mask is None):
        raise BadInput("a mark match needs both a mark and a mask")
    if m.mark is not None and m.mark_mask is not None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (m.mark, m.mark_mask)):
            raise BadInput(f"bad mark {m.mark!r}/{m.mark_mask!r}")
        if not 0 < m.mark_mask <= 0xFFFFFFFF or m.mark & ~m.mark_mask or not m.mark:
            raise BadInput(f"bad mark {m.mark:#x}/{m.mark_mask:#x}: a non-zero value inside a 32-bit mask")
    if (m.match_set is None) != (m.set_flags is None):
        raise BadInput("a set match needs both a set name and its flags")
    if m.match_set is not None:
        _check_set(m)
    return replace(
        m,
        src=None if m.src is None else _cidr(m.src, m.family, "source"),
        dst=None if m.dst is None else _cidr(m.dst, m.family, "destination"),
        sport=None if m.sport is None else _port(m.sport, "source port"),
        dport=None if m.dport is None else _port(m.dport, "destination port"),
        cgroup=None if m.cgroup is None else _cgroup(m.cgroup),
        uid_owner=None if m.uid_owner is None else _id(m.uid_owner, "uid"),
        gid_owner=None if m.gid_owner is None else _id(m.gid_owner, "gid"),
        in_iface=None if m.in_iface is None else _iface(m.in_iface, "input interface"),
        out_iface=None if m.out_iface is None else _iface(m.out_iface, "output interface"),
    )


def _check_set(m: Match) -> None:
    """Only netjail's own sets (fallback_sets), of the match's family, with flags it writes."""
    name = m.match_set or ""
    if name == GATE:
        if m.set_flags not in ("src", "dst"):
            raise BadInput(f"bad set flags {m.set_flags!r} for {GATE}")
        return
    kind = set_kind(name)
    if kind is None or len(name.encode()) >= IPSET_MAXNAMELEN or not name.startswith(FAMILY_TAG[m.family]):
        raise BadInput(f"bad set {name!r}: not one of netjail's {m.family} fallback sets")
    if m.set_flags not in VALID_FLAGS:
        raise BadInput(f"bad set flags {m.set_flags!r}")


@functools.lru_cache(maxsize=16384)
def match_sort_key(m: Match) -> tuple[tuple[bool, Any], ...]:
    # (is set, value): unset fields never get compared with set ones of another type.
    return tuple(
        (getattr(m, f.name) is not None, getattr(m, f.name) if getattr(m, f.name) is not None else 0)
        for f in fields(m)
    )


def _canonical_tuple(matches: Iterable[Match], direction: str) -> tuple[Match, ...]:
    unique = dict.fromkeys(canonical_match(m, direction) for m in matches)
    return tuple(sorted(unique, key=match_sort_key))


def canonical_rules(rules: JailRules) -> JailRules:
    """Validated, normalised JailRules: each tuple de-duplicated and sorted (order carries no
    meaning inside one jail: selectors all jump to the same chain, allow entries all RETURN)."""
    return JailRules(
        name=check_jail_name(rules.name),
        out_selectors=_canonical_tuple(rules.out_selectors, "out"),
        in_selectors=_canonical_tuple(rules.in_selectors, "in"),
        fwd_selectors=_canonical_tuple(rules.fwd_selectors, "fwd"),
        out_allow=_canonical_tuple(rules.out_allow, "out"),
        in_allow=_canonical_tuple(rules.in_allow, "in"),
        fwd_allow=_canonical_tuple(rules.fwd_allow, "fwd"),
        set_entries=canonical_entries(rules.set_entries),
    )


def selectors(rules: JailRules, direction: str) -> tuple[Match, ...]:
    by_dir: dict[str, tuple[Match, ...]] = {
        "out": rules.out_selectors,
        "in": rules.in_selectors,
        "fwd": rules.fwd_selectors,
    }
    return by_dir[direction]


def allow(rules: JailRules, direction: str) -> tuple[Match, ...]:
    by_dir: dict[str, tuple[Match, ...]] = {
        "out": rules.out_allow,
        "in": rules.in_allow,
        "fwd": rules.fwd_allow,
    }
    return by_dir[direction]


def uses_forward(rules: JailRules) -> bool:
    return bool(rules.fwd_selectors or rules.fwd_allow)


def families_used(rules: JailRules) -> set[str]:
    return {m.family for d in DIRECTIONS for m in (*selectors(rules, d), *allow(rules, d))}
