"""Back from `table inet netjail`'s JSON listing to JailRules (pure): what reconciliation adopts
when the state file is gone, and what the contract suite compares with what was asked.

Only the shapes nft_plan.py writes are decoded; a rule of any other shape reads back as nothing,
so the drift check sees the wanted entry missing and the next sync puts it back. nft prints a
rule without the dependencies it implies (`meta nfproto ipv6` before `ip6 daddr`, `meta l4proto
tcp` before `tcp dport`), so the family and protocol are taken from whichever part carries them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from netjail.backends.firewall.base import JailRules, Match, SetEntry
from netjail.backends.firewall.fallback_sets import FLAGS, set_kind
from netjail.backends.firewall.matches import DIRECTIONS
from netjail.backends.firewall.nft_plan import (
    BASE,
    HOST_LEN,
    NAT_CHAIN,
    NAT_COMMENT,
    NFPROTO_NUM,
    PROTO_NAME,
    Held,
    HeldRule,
    allow_set_names,
    jail_chain,
    shared_map,
)

_ADDR_PROTO = {"ip": "inet", "ip6": "inet6"}


def _cidr(value: Any, family: str) -> str | None:
    if isinstance(value, dict) and "prefix" in value:
        text = f"{value['prefix']['addr']}/{value['prefix']['len']}"
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(value)
    net = ipaddress.ip_network(text, strict=False)
    return None if net.prefixlen == 0 else str(net)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(value)
    return value


def decode_match(exprs: Iterable[Any], direction: str, cgroup_prefix: str | None = None) -> Match | None:
    """The Match of a rule's match expressions (verdicts and counters skipped); None when a part
    is not one netjail writes."""
    f: dict[str, Any] = {}
    family: str | None = None
    try:
        for e in exprs:
            if not isinstance(e, dict):
                return None
            if any(k in e for k in ("counter", "jump", "goto", "return", "drop", "accept")):
                continue
            m = e.get("match")
            if not isinstance(m, dict) or m.get("op") not in ("==", "in"):
                return None
            left, right = m.get("left"), m.get("right")
            if not isinstance(left, dict):
                return None
            if left in ({"meta": {"key": "mark"}}, {"socket": {"key": "mark"}}):
                # `mark & 0xff000000 == V`: nft prints a mask of leading ones as a prefix of V
                if not (isinstance(right, dict) and "prefix" in right):
                    return None
                plen = _int(right["prefix"]["len"])
                f["mark"], f["mark_mask"] = _int(right["prefix"]["addr"]), ((1 << plen) - 1) << (32 - plen)
                if "socket" in left and direction != "in":
                    f["socket_mark"] = True
            elif "meta" in left:
                key = left["meta"].get("key")
                if key == "nfproto":
                    family = NFPROTO_NUM[right]
                elif key == "l4proto":
                    f["proto"] = PROTO_NAME[_int(right)]
                elif key in ("skuid", "skgid"):
                    f["uid_owner" if key == "skuid" else "gid_owner"] = _int(right)
                elif key in ("iifname", "oifname") and isinstance(right, str):
                    f["in_iface" if key == "iifname" else "out_iface"] = right
                else:
                    return None
            elif "payload" in left:
                proto, fld = left["payload"].get("protocol"), left["payload"].get("field")
                if proto in _ADDR_PROTO and fld in ("saddr", "daddr"):
                    family = _ADDR_PROTO[proto]
                    f["src" if fld == "saddr" else "dst"] = (proto, right)
                elif proto in ("tcp", "udp") and fld in ("sport", "dport"):
                    f["proto"] = proto
                    f[fld] = _int(right)
                elif proto == "icmpv6" and fld == "type":
                    family, f["proto"], f["icmp6_type"] = "inet6", "icmpv6", _int(right)
                else:
                    return None
            elif "socket" in left and left["socket"].get("key") == "cgroupv2" and isinstance(right, str):
                path = _cgroup_path(right, cgroup_prefix)  # the level is not listed: the path says it
                if path is None:
                    return None
                f["cgroup"] = path
            elif "&" in left:
                inner, mask = left["&"]
                if inner == {"meta": {"key": "mark"}} or inner == {"socket": {"key": "mark"}}:
                    f["mark"], f["mark_mask"] = _int(right), _int(mask)
                    if "socket" in inner and direction != "in":
                        f["socket_mark"] = True
                else:
                    return None
            else:
                return None
        if family is None:
            return None
        for k in ("src", "dst"):
            if k in f:
                f[k] = _cidr(f[k][1], family)
        return Match(family, **f)
    except (KeyError, ValueError, TypeError):
        return None


def _set_elements(held: Held, name: str) -> list[tuple[str, ...]]:
    have = held.sets.get(name)
    return [tuple(k.split(" . ")) for k in have.elements] if have else []


def _addr_or_none(text: str) -> str | None:
    net = ipaddress.ip_network(text, strict=False)
    return None if net.prefixlen == 0 else str(net)


def _allow_from_set(held: Held, name: str, direction: str) -> list[Match]:
    family = "inet" if name.endswith("4") else "inet6"
    shape = name[-2]
    out: list[Match] = []
    for parts in _set_elements(held, name):
        try:
            net = _addr_or_none(parts[0])
            proto = PROTO_NAME[int(parts[1])] if len(parts) == 3 else None
            port = int(parts[2]) if len(parts) == 3 else None
        except (KeyError, ValueError):
            continue
        if shape == "a" and len(parts) == 1:
            out.append(Match(family, dst=net) if direction == "out" else Match(family, src=net))
        elif shape == "p" and proto is not None:
            if direction == "out":
                out.append(Match(family, proto, dst=net, dport=port))
            else:
                out.append(Match(family, proto, src=net, sport=port))
    return out


def _set_entries(held: Held, name: str) -> list[SetEntry]:
    kind = set_kind(name)
    if kind is None:
        return []
    family, k = kind
    out: list[SetEntry] = []
    for parts in _set_elements(held, name):
        try:
            proto = PROTO_NAME[int(parts[1])]
            if k == "flow" and len(parts) == 4:
                out.append(SetEntry(family, k, proto, int(parts[2]), parts[0], parts[3]))
            elif len(parts) == 3:
                local = (
                    parts[0].split("/")[0] if ipaddress.ip_network(parts[0], strict=False).prefixlen else None
                )
                if (
                    local is not None
                    and ipaddress.ip_network(parts[0], strict=False).prefixlen != HOST_LEN[family]
                ):
                    continue
                out.append(SetEntry(family, k, proto, int(parts[2]), local))
        except (KeyError, ValueError):
            continue
    return out


def _set_selector(r: HeldRule) -> tuple[Match, str] | None:
    """(Match, set name) of a fallback-set jump rule."""
    for e in r.expr:
        m = e.get("match") if isinstance(e, dict) else None
        if not m or not isinstance(m.get("right"), str) or not m["right"].startswith("@"):
            continue
        name = m["right"][1:]
        kind = set_kind(name)
        left = m.get("left", {})
        fields = left.get("concat", []) if isinstance(left, dict) else []
        if kind is None or not fields or "payload" not in fields[0]:
            return None
        first = fields[0]["payload"].get("field")
        flags = {
            ("saddr", 4): "src,src,dst",
            ("daddr", 4): "dst,dst,src",
            ("saddr", 3): "src,src",
            ("daddr", 3): "dst,dst",
        }.get((first, len(fields)))
        if flags is None or flags not in FLAGS[kind[1]].values():
            return None
        return Match(kind[0], match_set=name, set_flags=flags), name
    return None


def read_jail(held: Held, jail: str, cgroup_prefix: str | None) -> JailRules | None:
    chains = {d: jail_chain(d, jail) for d in DIRECTIONS}
    if not any(c in held.chains for c in chains.values()):
        return None
    sel: dict[str, list[Match]] = {d: [] for d in DIRECTIONS}
    alw: dict[str, list[Match]] = {d: [] for d in DIRECTIONS}
    used_sets: set[str] = set()
    for name, have in held.sets.items():
        found = shared_map(name)
        if found is None:
            continue
        direction = "out" if name.startswith("out-") else "in"
        verdict = f"jump {chains[direction]}"
        for key, v in have.elements.items():
            if v != verdict:
                continue
            if "-mark-" in name:
                mask = int(name.rsplit("-", 1)[1], 16)
                sel[direction] += [Match(f, mark=int(key), mark_mask=mask) for f in ("inet", "inet6")]
            else:
                path = _cgroup_path(key.strip('"'), cgroup_prefix)
                if path is not None:
                    sel[direction] += [Match(f, cgroup=path) for f in ("inet", "inet6")]
    for d in DIRECTIONS:
        for r in held.chains.get(BASE[d], []):
            if r.target != chains[d]:
                continue
            found_set = _set_selector(r)
            if found_set is not None:
                sel[d].append(found_set[0])
                used_sets.add(found_set[1])
                continue
            m = decode_match(r.expr, d, cgroup_prefix)
            if m is not None:
                sel[d].append(m)
        own_sets = allow_set_names(jail)
        for r in held.chains.get(chains[d], []):
            if not any(isinstance(e, dict) and "return" in e for e in r.expr):
                continue
            looked_up = [
                e["match"]["right"][1:]
                for e in r.expr
                if isinstance(e, dict)
                and isinstance(e.get("match"), dict)
                and isinstance(e["match"].get("right"), str)
                and e["match"]["right"].startswith("@")
            ]
            if looked_up:
                if looked_up[0] in own_sets:
                    alw[d] += _allow_from_set(held, looked_up[0], d)
                continue
            m = decode_match(r.expr, d)
            if m is not None:
                alw[d].append(m)
    entries = tuple(e for name in sorted(used_sets) for e in _set_entries(held, name))
    return JailRules(
        name=jail,
        out_selectors=tuple(sel["out"]),
        in_selectors=tuple(sel["in"]),
        fwd_selectors=tuple(sel["fwd"]),
        out_allow=tuple(alw["out"]),
        in_allow=tuple(alw["in"]),
        fwd_allow=tuple(alw["fwd"]),
        set_entries=entries,
    )


def _cgroup_path(text: str, prefix: str | None) -> str | None:
    if prefix is None:
        return None
    if prefix:
        if not text.startswith(prefix + "/"):
            return None
        text = text[len(prefix) + 1 :]
    return "/" + text


def masquerades(held: Held) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for r in held.chains.get(NAT_CHAIN, []):
        comment = r.comment or ""
        if not comment.startswith(NAT_COMMENT):
            continue
        jail = comment[len(NAT_COMMENT) :].split(":", 1)[0]
        m = decode_match([e for e in r.expr if not (isinstance(e, dict) and "masquerade" in e)], "fwd")
        if m is not None and m.src is not None:
            out.setdefault(jail, []).append(m.src)
    return {j: tuple(sorted(v)) for j, v in out.items()}
