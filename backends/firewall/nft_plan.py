"""What netjail's `table inet netjail` should hold, and the one transaction that gets it there (pure).

Layout (docs/firewall-nftables.md has the reasoning and the measurements):

    table inet netjail
      chain output  { type filter hook output priority -10; }     every packet pays these few
        meta mark & 0xff000000 vmap @out-mark-ff000000             lookups, whatever the number
        socket cgroupv2 level 4 vmap @out-cg-4                      of jails, members or sockets
        meta nfproto ipv4 meta skuid 1000 jump nj-o-web            (one rule per owner jail)
        ip saddr . meta l4proto . th sport . ip daddr @nj4-web-f jump nj-o-web  (fallback sets)
      chain input   { ... hook input ... }   socket mark & M vmap @in-mark-M, socket cgroupv2 ...
      chain forward { ... hook forward ... } netns jails' veth selectors
      chain nj-o-web                                               one chain per jail and lane
        ip daddr @nj-web-o-a4 counter name "nj-web-allow4" return  allow-lists: interval sets
        ip daddr . meta l4proto . th dport @nj-web-o-p4 counter ... return
        limit rate 200/second burst 400 packets log prefix "netjail:out:web" group 5770 snaplen 384
        meta nfproto ipv4 counter name "nj-web-drop4" drop
        meta nfproto ipv6 counter name "nj-web-drop6" drop
      counter nj-web-drop4 / -drop6 / -allow4 / -allow6            named: they survive rebuilds
      chain postrouting { type nat hook postrouting priority srcnat; }   netns masquerade

Every rule netjail writes carries the comment "nj:<digest of its text>", so the planner compares
chains by their comments and rebuilds a chain whose rules differ (flush and re-add, inside the
same transaction: no packet sees it half done; counters are named objects and keep counting).
Set and map elements are compared one by one, as the text nft prints them back.

A drop in any nftables base chain is final, so netjail's chain needs no position to defend
against other tables (docs/kernel-facts.md #25). Allowed traffic returns (like the iptables
backend): netjail only narrows what the host's own rules allow, and a packet two jails select is
dropped when either drops it.
"""

from __future__ import annotations

import ipaddress
import re
from _blake2 import blake2b  # hashlib's own: hashlib loads OpenSSL (~2.5 ms a command)
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from netjail.backends.errors import BadInput, UnsupportedEnvironment
from netjail.backends.firewall.base import JailRules, Match, SetEntry
from netjail.backends.firewall.fallback_sets import jail_set_names, set_kind
from netjail.backends.firewall.matches import DIRECTIONS, allow, selectors, uses_forward

TABLE = "inet netjail"
BASE = {"out": "output", "in": "input", "fwd": "forward"}
PRIORITY = -10  # before the filter tables of iptables-nft and xtables-legacy (0): see the docs
NAT_CHAIN = "postrouting"
NAT_COMMENT = "nat:"
LANE_TAG = {"out": "o", "in": "i", "fwd": "f"}
JAIL_CHAIN_PREFIXES = tuple(f"nj-{t}-" for t in LANE_TAG.values())
RULE_TAG = "nj:"
NFPROTO = {"inet": "ipv4", "inet6": "ipv6"}
NFPROTO_NUM = {2: "inet", 10: "inet6", "ipv4": "inet", "ipv6": "inet6"}
IP_KW = {"inet": "ip", "inet6": "ip6"}
ADDR_TYPE = {"inet": "ipv4_addr", "inet6": "ipv6_addr"}
FAM_DIGIT = {"inet": "4", "inet6": "6"}
HOST_LEN = {"inet": 32, "inet6": 128}
PROTO_NUM = {"tcp": 6, "udp": 17, "icmpv6": 58}
PROTO_NAME = {v: k for k, v in PROTO_NUM.items()}
NO_CGROUP_NAMES = "cgroup2 is not mounted under /sys/fs/cgroup, where nftables names cgroups"
_SHARED_MAP = re.compile(r"(out|in)-(mark-[0-9a-f]{8}|cg-[0-9]{1,3})")
# what a string may hold to be written between double quotes in nft's syntax: nft reads a
# backslash there as itself (measured, nft 1.0.6), and systemd escapes unit names with it
# ("wg-quick@wg\x2d0.service"), so a unit's cgroup must be nameable
_QUOTABLE = re.compile(r'[^"\x00-\x1f\x7f]*')


@dataclass(frozen=True, slots=True)
class Decl:
    """A set's or map's declaration, compared with what the kernel lists."""

    types: tuple[str, ...]
    flags: tuple[str, ...] = ()
    map: str | None = None  # "verdict" for a verdict map

    def text(self) -> str:
        out = f"type {' . '.join(self.types)}"
        if self.map:
            out += f" : {self.map}"
        out += ";"
        if self.flags:
            out += f" flags {', '.join(self.flags)};"
        return out


@dataclass
class JailPart:
    """Everything one jail puts in the table (built by jail_part)."""

    name: str
    chains: dict[str, list[str]] = field(default_factory=dict)  # jail chain -> rule texts
    base_rules: dict[str, list[str]] = field(default_factory=dict)  # base chain -> jump rules
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # shared map -> key -> verdict
    sets: dict[str, tuple[Decl, set[str]]] = field(default_factory=dict)  # its own sets
    counters: tuple[str, ...] = ()


@dataclass
class HeldRule:
    handle: int
    comment: str | None
    target: str | None  # the chain it jumps to, if it does
    expr: list[Any]


@dataclass
class HeldSet:
    decl: Decl
    elements: dict[str, str | None]  # element key text -> verdict text (maps) or None
    stale: bool = False  # holds an element netjail cannot name back (a deleted cgroup's id)


@dataclass
class Held:
    """What the kernel's `table inet netjail` holds, from one JSON listing."""

    chains: dict[str, list[HeldRule]] = field(default_factory=dict)
    sets: dict[str, HeldSet] = field(default_factory=dict)
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)

    def jails(self) -> set[str]:
        return {c[len(JAIL_CHAIN_PREFIXES[0]) :] for c in self.chains if c.startswith(JAIL_CHAIN_PREFIXES)}


# ---- names ----------------------------------------------------------------------------------


def jail_chain(direction: str, jail: str) -> str:
    return f"nj-{LANE_TAG[direction]}-{jail}"


def jail_chains(jail: str) -> tuple[str, ...]:
    return tuple(jail_chain(d, jail) for d in DIRECTIONS)


def counter_name(jail: str, verdict: str, family: str) -> str:
    return f"nj-{jail}-{verdict}{FAM_DIGIT[family]}"


def counter_names(jail: str) -> tuple[str, ...]:
    return tuple(counter_name(jail, v, f) for v in ("drop", "allow") for f in FAM_DIGIT)


def allow_set_name(jail: str, direction: str, shape: str, family: str) -> str:
    return f"nj-{jail}-{LANE_TAG[direction]}-{shape}{FAM_DIGIT[family]}"


def allow_set_names(jail: str) -> set[str]:
    return {allow_set_name(jail, d, s, f) for d in ("out", "in") for s in ("a", "p") for f in FAM_DIGIT}


def own_set_names(jail: str) -> set[str]:
    return allow_set_names(jail) | jail_set_names(jail)


def tag(text: str) -> str:
    return RULE_TAG + blake2b(text.encode(), digest_size=6).hexdigest()


def quoted(value: str, what: str) -> str:
    if not _QUOTABLE.fullmatch(value):
        raise BadInput(f"{what} {value!r} holds a character nft strings cannot carry")
    return f'"{value}"'


def cgroup_element(path: str, prefix: str) -> str:
    """A cgroup selector's path as nft names it: relative to /sys/fs/cgroup (docs/kernel-facts.md
    #12), so `prefix` is where the cgroup2 hierarchy is mounted below that ("unified" on a hybrid
    host, "" on a unified one)."""
    rel = path.strip("/")
    full = f"{prefix}/{rel}" if prefix and rel else (prefix or rel)
    return quoted(full, "cgroup path")


def cgroup_level(path: str) -> int:
    return len([p for p in path.strip("/").split("/") if p])


# ---- text of one match ------------------------------------------------------------------------


def _addr(cidr: str, family: str) -> str:
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address) if net.prefixlen == HOST_LEN[family] else str(net)


def match_text(m: Match, direction: str, cgroup_prefix: str | None = None) -> str:
    """nft's syntax for a Match as a rule of its own (not a set selector; cgroup and mark
    selectors of both families go in maps instead). Incoming mark matches test the receiving
    socket's mark, as the iptables backend's `--restore-skmark` lane does (lanes.py)."""
    p = [f"meta nfproto {NFPROTO[m.family]}"]
    if m.cgroup is not None:
        if cgroup_prefix is None:
            raise UnsupportedEnvironment(NO_CGROUP_NAMES)
        p.append(f"socket cgroupv2 level {cgroup_level(m.cgroup)} {cgroup_element(m.cgroup, cgroup_prefix)}")
    ip = IP_KW[m.family]
    if m.in_iface is not None:
        p.append(f"iifname {quoted(m.in_iface, 'interface')}")
    if m.out_iface is not None:
        p.append(f"oifname {quoted(m.out_iface, 'interface')}")
    if m.uid_owner is not None:
        p.append(f"meta skuid {m.uid_owner}")
    if m.gid_owner is not None:
        p.append(f"meta skgid {m.gid_owner}")
    if m.src is not None:
        p.append(f"{ip} saddr {_addr(m.src, m.family)}")
    if m.dst is not None:
        p.append(f"{ip} daddr {_addr(m.dst, m.family)}")
    if m.proto in ("tcp", "udp"):
        if m.sport is None and m.dport is None:
            p.append(f"meta l4proto {m.proto}")
        if m.sport is not None:
            p.append(f"{m.proto} sport {m.sport}")
        if m.dport is not None:
            p.append(f"{m.proto} dport {m.dport}")
    elif m.proto == "icmpv6":
        p.append("meta l4proto icmpv6" if m.icmp6_type is None else f"icmpv6 type {m.icmp6_type}")
    if m.mark is not None and m.mark_mask is not None:
        key = "socket mark" if (m.socket_mark or direction == "in") else "meta mark"
        p.append(f"{key} & {m.mark_mask:#x} == {m.mark:#x}")
    return " ".join(p)


# ---- one jail's part ----------------------------------------------------------------------------


def _set_lookup(name: str, flags: str, family: str) -> str:
    """The lookup of a fallback set (fallback_sets.py) in the direction its flags say."""
    ip = IP_KW[family]
    if flags == "src,src,dst":
        return f"{ip} saddr . meta l4proto . th sport . {ip} daddr @{name}"
    if flags == "dst,dst,src":
        return f"{ip} daddr . meta l4proto . th dport . {ip} saddr @{name}"
    if flags == "src,src":
        return f"{ip} saddr . meta l4proto . th sport @{name}"
    if flags == "dst,dst":
        return f"{ip} daddr . meta l4proto . th dport @{name}"
    raise BadInput(f"bad set flags {flags!r}")


def _fallback_decl(family: str, kind: str) -> Decl:
    addr = ADDR_TYPE[family]
    if kind == "flow":
        return Decl((addr, "inet_proto", "inet_service", addr))
    return Decl((addr, "inet_proto", "inet_service"), ("interval",))


def fallback_element(e: SetEntry) -> str:
    proto = PROTO_NUM[e.proto]
    if e.kind == "flow":
        return f"{e.local} . {proto} . {e.port} . {e.remote}"
    local = e.local if e.local is not None else ("0.0.0.0/0" if e.family == "inet" else "::/0")
    return f"{local} . {proto} . {e.port}"


def _only(m: Match, *names: str) -> bool:
    """Whether `m` sets no field but family and `names` (the proto/port fields count as set
    when not None)."""
    for f in ("proto", "src", "dst", "sport", "dport", "cgroup", "uid_owner", "gid_owner"):
        if f not in names and getattr(m, f) is not None:
            return False
    for f in ("in_iface", "out_iface", "icmp6_type", "mark", "mark_mask", "match_set", "set_flags"):
        if f not in names and getattr(m, f) is not None:
            return False
    return not m.socket_mark and not m.log_limit


def _allow_shape(m: Match, direction: str) -> tuple[str, str] | None:
    """(set shape, element) when an allow entry fits one of the jail's interval sets."""
    addr_field, port_field = ("dst", "dport") if direction == "out" else ("src", "sport")
    addr = getattr(m, addr_field)
    if addr is not None and _only(m, addr_field):
        return "a", _addr(addr, m.family)
    if (
        m.proto in ("tcp", "udp")
        and getattr(m, port_field) is not None
        and _only(m, "proto", addr_field, port_field)
    ):
        net = addr if addr is not None else ("0.0.0.0/0" if m.family == "inet" else "::/0")
        return "p", f"{_addr(net, m.family)} . {PROTO_NUM[m.proto]} . {getattr(m, port_field)}"
    return None


def _overlaps(element: str, taken: Sequence[str]) -> bool:
    """Interval sets refuse overlapping elements: two entries whose networks overlap (for the
    same protocol and port) cannot both go in; the later one becomes a rule of its own."""
    net, _, rest = element.partition(" . ")
    mine = ipaddress.ip_network(net, strict=False)
    for other in taken:
        onet, _, orest = other.partition(" . ")
        if orest == rest and mine.overlaps(ipaddress.ip_network(onet, strict=False)):
            return True
    return False


def _allow_rules(rules: JailRules, direction: str, part: JailPart) -> list[str]:
    jail = rules.name
    out: list[str] = []
    in_sets: dict[tuple[str, str], list[str]] = {}
    plain: list[Match] = []
    for m in allow(rules, direction):
        shape = _allow_shape(m, direction) if direction != "fwd" else None
        if shape is None or _overlaps(shape[1], in_sets.get((shape[0], m.family), [])):
            plain.append(m)
        else:
            in_sets.setdefault((shape[0], m.family), []).append(shape[1])
    ip_field = "daddr" if direction == "out" else "saddr"
    port_field = "dport" if direction == "out" else "sport"
    for (kind, family), elements in sorted(in_sets.items()):
        name = allow_set_name(jail, direction, kind, family)
        addr = ADDR_TYPE[family]
        ip = IP_KW[family]
        if kind == "a":
            part.sets[name] = (Decl((addr,), ("interval",)), set(elements))
            lookup = f"{ip} {ip_field} @{name}"
        else:
            part.sets[name] = (Decl((addr, "inet_proto", "inet_service"), ("interval",)), set(elements))
            lookup = f"{ip} {ip_field} . meta l4proto . th {port_field} @{name}"
        out.append(f'{lookup} counter name "{counter_name(jail, "allow", family)}" return')
    for m in plain:
        out.append(
            f'{match_text(m, direction)} counter name "{counter_name(jail, "allow", m.family)}" return'
        )
    return out


def _admits_dns_answers(rules: JailRules) -> bool:
    """Whether an incoming allow entry lets UDP from port 53 in (a resolver on the allow-list)."""
    return any(m.proto in (None, "udp") and m.sport in (None, 53) for m in rules.in_allow)


def log_text(direction: str, jail: str) -> str:
    from netjail.backends.attempts import prefix

    count, _, unit = prefix.RATE.partition("/")
    per = {"sec": "second", "min": "minute"}.get(unit, unit)
    return (
        f"limit rate {count}/{per} burst {prefix.BURST} packets "
        f"log prefix {quoted(prefix.make(direction, jail), 'log prefix')} group {prefix.group()} "
        f"snaplen {prefix.SNAPLEN}"
    )


def jail_part(rules: JailRules, cgroup_prefix: str | None, *, log: bool) -> JailPart:
    """One jail's chains, jump rules, map elements, sets and counters (`rules` canonical;
    `cgroup_prefix` None: cgroup2 is mounted where nft cannot name cgroups)."""
    jail = rules.name
    part = JailPart(jail, counters=counter_names(jail))
    entries_by_set: dict[str, list[SetEntry]] = {}
    for e in rules.set_entries:
        from netjail.backends.firewall.fallback_sets import set_name

        entries_by_set.setdefault(set_name(e.family, jail, e.kind), []).append(e)
    for d in DIRECTIONS:
        if d == "fwd" and not uses_forward(rules):
            continue
        chain = jail_chain(d, jail)
        verdict = f"jump {chain}"
        body = _allow_rules(rules, d, part)
        if log and d == "in" and _admits_dns_answers(rules):
            # a copy of each DNS answer the allow-list lets in names the jail's later attempts
            # (lane "a", docs/attempts.md); it comes first: the allow rules return
            body.insert(0, f"udp sport 53 {log_text('answer', jail)}")
        if log:
            body.append(log_text(d, jail))
        body += [
            f'meta nfproto {NFPROTO[f]} counter name "{counter_name(jail, "drop", f)}" drop'
            for f in FAM_DIGIT
        ]
        part.chains[chain] = body
        chosen = set(selectors(rules, d))
        for m in selectors(rules, d):
            # a map element selects both families: only a selector wanted for both goes there
            both = all(replace(m, family=f) in chosen for f in FAM_DIGIT)
            if m.cgroup is not None and _only(m, "cgroup") and d != "fwd" and both:
                if cgroup_prefix is None:
                    raise UnsupportedEnvironment(NO_CGROUP_NAMES)
                name = f"{d}-cg-{cgroup_level(m.cgroup)}"
                part.elements.setdefault(name, {})[cgroup_element(m.cgroup, cgroup_prefix)] = verdict
            elif (
                m.mark is not None
                and m.mark_mask is not None
                and _only(m, "mark", "mark_mask")
                and d != "fwd"
                and both
            ):
                name = f"{d}-mark-{m.mark_mask:08x}"
                part.elements.setdefault(name, {})[str(m.mark)] = verdict
            elif m.match_set is not None and m.set_flags is not None:
                kind = set_kind(m.match_set)
                if kind is None:
                    raise BadInput(f"bad set {m.match_set!r}")
                elements = {fallback_element(e) for e in entries_by_set.get(m.match_set, [])}
                if not elements:
                    continue  # an empty set selects nobody
                part.sets[m.match_set] = (_fallback_decl(*kind), elements)
                part.base_rules.setdefault(BASE[d], []).append(
                    f"{_set_lookup(m.match_set, m.set_flags, m.family)} {verdict}"
                )
            else:
                part.base_rules.setdefault(BASE[d], []).append(f"{match_text(m, d, cgroup_prefix)} {verdict}")
    for rs in part.base_rules.values():
        rs[:] = sorted(set(rs))
    return part


def shared_map(name: str) -> tuple[Decl, str, str] | None:
    """(declaration, lookup rule, base chain) of one of the dispatch maps, None for other names."""
    found = _SHARED_MAP.fullmatch(name)
    if not found:
        return None
    direction, kind = found.group(1), found.group(2)
    if kind.startswith("mark-"):
        mask = int(kind[5:], 16)
        key = "meta mark" if direction == "out" else "socket mark"
        return Decl(("mark",), map="verdict"), f"{key} & {mask:#x} vmap @{name}", BASE[direction]
    level = int(kind[3:])
    return Decl(("cgroupsv2",), map="verdict"), f"socket cgroupv2 level {level} vmap @{name}", BASE[direction]


# ---- reading a listing back ------------------------------------------------------------------------


def _elem_text(value: Any) -> str:
    if isinstance(value, dict):
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            lo, hi = value["range"]
            return f"{_elem_text(lo)}-{_elem_text(hi)}"
        if "concat" in value:
            return " . ".join(_elem_text(v) for v in value["concat"])
        if "elem" in value:  # an element with options (timeout, counter): its value
            return _elem_text(value["elem"]["val"])
        raise ValueError(f"unknown element {value!r}")
    if isinstance(value, bool):
        raise ValueError("unknown element")
    return str(value)


def _verdict_text(value: Any) -> str:
    if isinstance(value, dict):
        for kind in ("jump", "goto"):
            if kind in value:
                return f"{kind} {value[kind]['target']}"
        return str(next(iter(value)))  # {"accept": null}
    return str(value)


def _decl(obj: Mapping[str, Any]) -> Decl:
    t = obj.get("type")
    types = tuple(t) if isinstance(t, list) else (str(t),)
    flags = tuple(obj.get("flags", ()))
    if isinstance(obj.get("flags"), str):
        flags = (obj["flags"],)
    return Decl(types, tuple(sorted(flags)), obj.get("map"))


def parse_listing(items: Iterable[Mapping[str, Any]]) -> Held:
    held = Held()
    for item in items:
        if "chain" in item:
            held.chains.setdefault(item["chain"]["name"], [])
        elif "rule" in item:
            r = item["rule"]
            target = None
            for e in r.get("expr", ()):
                if isinstance(e, dict):
                    for kind in ("jump", "goto"):
                        if isinstance(e.get(kind), dict):
                            target = e[kind].get("target")
            held.chains.setdefault(r["chain"], []).append(
                HeldRule(int(r["handle"]), r.get("comment"), target, list(r.get("expr", ())))
            )
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            decl = _decl(s)
            elements: dict[str, str | None] = {}
            stale = False
            cgroups = decl.types == ("cgroupsv2",)
            for el in s.get("elem", ()):
                if isinstance(el, list):
                    key, value = el
                    text, verdict = _elem_text(key), _verdict_text(value)
                else:
                    text, verdict = _elem_text(el), None
                if cgroups:
                    # a cgroup that is gone lists as its bare id; a path nft's strings cannot carry
                    # is no element netjail wrote: either way it is flushed, never written back
                    if isinstance(key, int) or text.isdigit() or not _QUOTABLE.fullmatch(text):
                        stale = True
                        continue
                    text = f'"{text}"'
                elements[text] = verdict
            held.sets[s["name"]] = HeldSet(decl, elements, stale)
        elif "counter" in item:
            c = item["counter"]
            held.counters[c["name"]] = (int(c.get("packets", 0)), int(c.get("bytes", 0)))
    return held


# ---- planning -----------------------------------------------------------------------------------


def _rule(chain: str, text: str) -> str:
    return f'add rule {TABLE} {chain} {text} comment "{tag(text)}"'


def base_chain_decls() -> list[str]:
    return [
        f"add chain {TABLE} {chain} {{ type filter hook {hook} priority {PRIORITY}; policy accept; }}"
        for chain, hook in (("output", "output"), ("input", "input"), ("forward", "forward"))
    ]


NAT_DECL = f"add chain {TABLE} {NAT_CHAIN} {{ type nat hook postrouting priority srcnat; policy accept; }}"


def plan(held: Held | None, parts: Mapping[str, JailPart | None]) -> list[str]:
    """Commands taking the table from `held` (None: absent) to holding `parts` (None: remove the
    jail) for the jails named, and what it holds for the others. Empty when nothing changes."""
    cur = held or Held()
    remaining = (cur.jails() - set(parts)) | {j for j, p in parts.items() if p is not None}
    nat_rules = cur.chains.get(NAT_CHAIN, [])
    if not remaining and not nat_rules:
        return [f"delete table {TABLE}"] if held is not None else []

    first: list[str] = []  # table, base chains, flushes of chains to rebuild
    create: list[str] = []  # jail chains, counters, sets and their elements
    body: list[str] = []  # jail chain rules
    maps: list[str] = []  # shared maps, their elements and lookups
    base: list[str] = []  # base chain rules
    # deletions, references before what they refer to: rules, then maps (their elements jump to
    # jail chains), then chains (their rules name sets and counters), then sets and counters
    gone_rules: list[str] = []
    gone_maps: list[str] = []
    gone_chains: list[str] = []
    gone_objects: list[str] = []

    if held is None:
        first.append(f"add table {TABLE}")
    for made, chain in zip(base_chain_decls(), ("output", "input", "forward"), strict=True):
        if chain not in cur.chains:
            first.append(made)

    changed_chains = {c for j in parts for c in jail_chains(j)}
    for jail, part in sorted(parts.items()):
        own_chains = jail_chains(jail)
        rebuild: set[str] = set()
        remade_base = False
        # the jail's own sets
        for name in sorted(own_set_names(jail)):
            want = part.sets.get(name) if part else None
            have = cur.sets.get(name)
            if want is None:
                if have is not None:
                    gone_objects.append(f"delete set {TABLE} {name}")
                continue
            decl, elements = want
            if have is not None and have.decl != Decl(decl.types, tuple(sorted(decl.flags)), decl.map):
                rebuild |= {c for c in own_chains if c in cur.chains}  # its references go first
                remade_base = True
                create.append(f"delete set {TABLE} {name}")
                have = None
            if have is None:
                create.append(f"add set {TABLE} {name} {{ {decl.text()} }}")
                if elements:
                    create.append(f"add element {TABLE} {name} {{ {', '.join(sorted(elements))} }}")
                continue
            add, gone = elements - set(have.elements), set(have.elements) - elements
            if gone and "interval" in decl.flags:
                # replacing overlapping intervals element by element can collide: all at once
                create.append(f"flush set {TABLE} {name}")
                if elements:
                    create.append(f"add element {TABLE} {name} {{ {', '.join(sorted(elements))} }}")
            else:
                if gone:
                    create.append(f"delete element {TABLE} {name} {{ {', '.join(sorted(gone))} }}")
                if add:
                    create.append(f"add element {TABLE} {name} {{ {', '.join(sorted(add))} }}")
        # counters
        for name in counter_names(jail):
            if part is not None and name not in cur.counters:
                create.insert(0, f"add counter {TABLE} {name}")
            elif part is None and name in cur.counters:
                gone_objects.append(f"delete counter {TABLE} {name}")
        # jail chains
        for chain in own_chains:
            want_rules = part.chains.get(chain) if part else None
            if want_rules is None:
                if chain in cur.chains:
                    gone_chains += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
                continue
            if chain not in cur.chains:
                create.insert(0, f"add chain {TABLE} {chain}")
            elif chain in rebuild or [r.comment for r in cur.chains[chain]] != [tag(t) for t in want_rules]:
                first.append(f"flush chain {TABLE} {chain}")
            else:
                continue
            body += [_rule(chain, t) for t in want_rules]
        # jump rules in the base chains
        for d in DIRECTIONS:
            chain = BASE[d]
            have_rules = [r for r in cur.chains.get(chain, []) if r.target in own_chains]
            want_rules = part.base_rules.get(chain, []) if part else []
            if remade_base or sorted(r.comment or "" for r in have_rules) != sorted(
                tag(t) for t in want_rules
            ):
                deletes = [f"delete rule {TABLE} {chain} handle {r.handle}" for r in have_rules]
                if remade_base:  # before the set they look up is deleted
                    first += deletes
                else:
                    gone_rules += deletes
                base += [_rule(chain, t) for t in want_rules]

    # rules in the base chains netjail did not write (a user's accept would reopen every jail)
    for chain in BASE.values():
        for r in cur.chains.get(chain, []):
            if not (r.comment or "").startswith(RULE_TAG) and not _is_lookup(r):
                gone_rules.append(f"delete rule {TABLE} {chain} handle {r.handle}")

    # the shared dispatch maps
    names = {n for n in cur.sets if shared_map(n)} | {n for p in parts.values() if p for n in p.elements}
    for name in sorted(names):
        found = shared_map(name)
        if found is None:
            continue
        mdecl, lookup, chain = found
        have = cur.sets.get(name)
        lookups = [r for r in cur.chains.get(chain, []) if _lookup_of(r) == name]
        if have is not None and have.decl != mdecl:  # someone changed it: re-made with what is known
            maps += [f"delete rule {TABLE} {chain} handle {r.handle}" for r in lookups]
            maps.append(f"delete map {TABLE} {name}")
            have, lookups = None, []
        kept = {
            k: v
            for k, v in (have.elements.items() if have else ())
            if v is not None and v.split(" ", 1)[-1] not in changed_chains
        }
        wanted: dict[str, str] = dict(kept)
        for p in parts.values():
            for k, v in (p.elements.get(name, {}) if p else {}).items():
                if k in wanted and wanted[k] != v:
                    raise BadInput(f"two jails select the same {name} element {k}")
                wanted[k] = v
        if not wanted:
            if have is not None or lookups:
                gone_rules += [f"delete rule {TABLE} {chain} handle {r.handle}" for r in lookups]
                gone_maps.append(f"delete map {TABLE} {name}")
            continue
        if have is None:
            maps.append(f"add map {TABLE} {name} {{ {mdecl.text()} }}")
            maps.append(_elements(name, wanted))
        elif have.stale:
            maps.append(f"flush map {TABLE} {name}")
            maps.append(_elements(name, wanted))
        else:
            gone = {k for k, v in have.elements.items() if wanted.get(k) != v}
            news = {k: v for k, v in wanted.items() if have.elements.get(k) != v}
            if gone:
                maps.append(f"delete element {TABLE} {name} {{ {', '.join(sorted(gone))} }}")
            if news:
                maps.append(_elements(name, news))
        if not lookups or have is None:
            gone_rules += [f"delete rule {TABLE} {chain} handle {r.handle}" for r in lookups]
            maps.append(_rule(chain, lookup).replace("add rule", "insert rule", 1))

    cmds = first + create + body + maps + base + gone_rules + gone_maps + gone_chains + gone_objects
    return list(dict.fromkeys(cmds))  # a rule found twice (foreign and stale) is deleted once


def _elements(name: str, elements: Mapping[str, str]) -> str:
    return f"add element {TABLE} {name} {{ {', '.join(f'{k} : {v}' for k, v in sorted(elements.items()))} }}"


def _lookup_of(r: HeldRule) -> str | None:
    """The shared map a base chain rule looks up (`... vmap @name`), if that is what it is."""
    if len(r.expr) == 1 and isinstance(r.expr[0], dict) and "vmap" in r.expr[0]:
        data = r.expr[0]["vmap"].get("data")
        if isinstance(data, str) and data.startswith("@"):
            return data[1:]
    return None


def _is_lookup(r: HeldRule) -> bool:
    name = _lookup_of(r)
    return name is not None and shared_map(name) is not None and (r.comment or "").startswith(RULE_TAG)
