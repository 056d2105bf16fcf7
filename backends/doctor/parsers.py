"""Parsers for what `netjail doctor` reads: /proc/PID/status, kernel .config, `iptables
--version`, iptables-save and `nft -j list ruleset` output, and the marks their rules and
`ip rule` use. Pure functions over text and plain values."""

from __future__ import annotations

import json
import re
import shlex
import socket
import struct
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple

# Chains and chain-name prefixes netjail owns (see firewall/base.py); everything else is foreign.
OWN_CHAIN_PREFIXES = ("NETJAIL-", "NJ-")
_APPEND = re.compile(r"^(?:\[\d+:\d+\] )?-A (\S+)(?:.* -[jg] (\S+))?")  # optional -c counters


def parse_cap_eff(status: str) -> int | None:
    """The effective capability mask from /proc/PID/status text."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return None


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_X -> "y"/"m"/"n"/value from a kernel .config ("# CONFIG_X is not set" -> "n")."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value.strip().strip('"')
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:].split()[0]] = "n"
    return values


def parse_iptables_version(text: str) -> tuple[str, str] | None:
    """("1.8.9", "nf_tables"|"legacy") from `iptables --version` (old versions print no variant)."""
    found = re.search(r"v(\d[\w.]*)(?:\s+\(([\w-]+)\))?", text)
    if not found:
        return None
    return found.group(1), found.group(2) or "legacy"


def _is_own(chain: str | None) -> bool:
    return chain is not None and chain.startswith(OWN_CHAIN_PREFIXES)


def count_save_rules(save: str) -> tuple[Counter[str], int]:
    """From iptables-save text: foreign rules per table, and netjail's own rule count. A rule is
    netjail's when it sits in a netjail chain or jumps to one."""
    foreign: Counter[str] = Counter()
    own = 0
    table = "?"
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif found := _APPEND.match(line):
            if _is_own(found.group(1)) or _is_own(found.group(2)):
                own += 1
            else:
                foreign[table] += 1
    return foreign, own


def save_chains(save: str) -> set[str]:
    return {line[1:].split()[0] for line in save.splitlines() if line.startswith(":") and len(line) > 1}


def parse_nft_ruleset(text: str) -> tuple[Counter[str], set[str], set[str]]:
    """From `nft -j list ruleset`: rules per "family table", table names, chain names."""
    rules: Counter[str] = Counter()
    tables: set[str] = set()
    chains: set[str] = set()
    for item in json.loads(text).get("nftables", []):
        if "table" in item:
            tables.add(item["table"]["name"])
        elif "chain" in item:
            chains.add(item["chain"]["name"])
        elif "rule" in item:
            rule = item["rule"]
            rules[f"{rule['family']} {rule['table']}"] += 1
    return rules, tables, chains


# ---- packet and socket marks in use (who else shares the mark with netjail) --------------------

FULL_MARK = 0xFFFFFFFF
MATCH, SET = "match", "set"
# nf_tables tables netjail owns (its nft backend); iptables chains: OWN_CHAIN_PREFIXES.
OWN_NFT_TABLE_PREFIX = "netjail"


class MarkSeen(NamedTuple):
    """One use of a mark: `kind` MATCH compares (mark & mask) with value, SET changes the bits
    in mask and value (an xor-mark: mask 0), SOCKET is a socket's own mark (value, mask all
    bits); `where` names the rule, routing rule or socket."""

    value: int
    mask: int
    kind: str
    where: str

    def bits(self) -> int:
        """The bits this use looks at or changes: a setter its mask and value; a comparison
        its mask, or its value when it compares the whole mark (`fwmark 0x1`: only that value
        is special, so a mark elsewhere changes nothing for it)."""
        if self.kind == SET:
            return (self.mask | self.value) & FULL_MARK
        return self.value if self.mask == FULL_MARK else self.mask


def _value_mask(text: str, default_mask: int = FULL_MARK) -> tuple[int, int] | None:
    value, _, mask = text.partition("/")
    try:
        return int(value, 0) & FULL_MARK, (int(mask, 0) if mask else default_mask) & FULL_MARK
    except ValueError:
        return None


def _save_tokens(line: str) -> list[str]:
    try:
        return shlex.split(line)  # a comment naming "--mark 0x1" is one quoted token
    except ValueError:
        return line.split()


# MARK target options other than --set-xmark, as older iptables-save versions print them:
# (value, mask) of the bits they change.
_MARK_OPS: dict[str, Callable[[int], tuple[int, int]]] = {
    "--set-mark": lambda v: (v, FULL_MARK),
    "--and-mark": lambda v: (0, ~v & FULL_MARK),
    "--or-mark": lambda v: (v, v),
    "--xor-mark": lambda v: (v, 0),
}


def _rule_marks(tokens: list[str]) -> list[tuple[int, int, str, str]]:
    """(value, mask, kind, the option text) of each mark an iptables-save rule matches or sets."""
    found: list[tuple[int, int, str, str]] = []
    module = target = ""
    masks: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        arg = tokens[i + 1] if i + 1 < len(tokens) else ""
        negated = i > 0 and tokens[i - 1] == "!"
        if tok == "-m":
            module = arg
        elif tok in ("-j", "-g"):
            target, module = arg, ""
        elif tok == "--mark" and not target and module in ("mark", "connmark"):
            if (vm := _value_mask(arg)) is not None:
                text = f"-m {module} {'! ' if negated else ''}--mark {arg}"
                found.append((*vm, MATCH, text))
        elif tok == "--restore-skmark" and module == "socket" and not target:
            found.append((0, FULL_MARK, SET, "-m socket --restore-skmark"))
        elif tok in ("--set-xmark", "--tproxy-mark") and target in ("MARK", "CONNMARK", "TPROXY"):
            if (vm := _value_mask(arg)) is not None:
                found.append((*vm, SET, f"-j {target} {tok} {arg}"))
        elif tok in _MARK_OPS and target == "MARK":
            if (vm := _value_mask(arg)) is not None:
                found.append((*_MARK_OPS[tok](vm[0]), SET, f"-j MARK {tok} {arg}"))
        elif tok in ("--nfmask", "--ctmask", "--mask") and target == "CONNMARK" and (vm := _value_mask(arg)):
            masks[tok] = vm[0]
    for op in ("--save-mark", "--restore-mark"):
        if target == "CONNMARK" and op in tokens:
            both = masks.get("--mask", FULL_MARK)
            mask = masks.get("--nfmask", both) | masks.get("--ctmask", both)
            found.append((0, mask, SET, f"-j CONNMARK {op} ({mask:#x})"))
    return found


def parse_save_marks(save: str, source: str) -> list[MarkSeen]:
    """Marks the rules of iptables-save text match or set, except netjail's own rules (in or
    jumping to its chains: they carry netjail's values, inside its range)."""
    seen: list[MarkSeen] = []
    table = "?"
    position: Counter[str] = Counter()
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            position.clear()
        elif found := _APPEND.match(line):
            chain = found.group(1)
            position[chain] += 1
            if _is_own(chain) or _is_own(found.group(2)) or "mark" not in line.lower():
                continue
            where = f"{source} {table} {chain} rule {position[chain]}"
            for value, mask, kind, text in _rule_marks(_save_tokens(line)):
                seen.append(MarkSeen(value, mask, kind, f"{where}: {text}"))
    return seen


def save_tables(save: str) -> set[str]:
    return {line[1:].strip() for line in save.splitlines() if line.startswith("*")}


_NFT_KEYS = (("meta", "meta mark"), ("ct", "ct mark"), ("socket", "socket mark"))
# iptables-nft rules whose mark options nft shows only as an opaque xt expression.
_XT_MARKS = {"MARK", "CONNMARK", "TPROXY", "mark", "connmark", "socket"}


def _nft_key(expr: Any) -> str | None:
    if isinstance(expr, dict):
        for key, name in _NFT_KEYS:
            if isinstance(expr.get(key), dict) and expr[key].get("key") == "mark":
                return name
    return None


def _nft_value_bits(right: Any) -> tuple[int, int]:
    """(value, mask) a comparison's right-hand side stands for: an integer, a prefix
    (`0x3000000/8`), a set or range of them (their bits together); anything else: all bits."""
    if isinstance(right, bool):
        return FULL_MARK, FULL_MARK
    if isinstance(right, int):
        return right & FULL_MARK, FULL_MARK
    if isinstance(right, dict) and isinstance(prefix := right.get("prefix"), dict):
        length = int(prefix.get("len", 32))
        mask = FULL_MARK ^ (FULL_MARK >> length) if length else 0
        return int(prefix.get("addr", 0)) & mask, mask
    items = right.get("set") if isinstance(right, dict) else None
    if isinstance(right, dict) and isinstance(right.get("range"), list):
        items = right["range"]
    if isinstance(items, list):
        value = 0
        for item in items:
            v, m = _nft_value_bits(item)
            value |= v | (~m & FULL_MARK)  # a prefix in a set: every value it covers
        return value, FULL_MARK
    return FULL_MARK, FULL_MARK


def _nft_changed(expr: Any, key: str) -> tuple[int, int]:
    """(bits set, bits that may change) when `key` is set to expr: `meta mark & A | B` keeps
    what A keeps and sets B; an integer or anything else (a map, `ct mark`) replaces all."""
    if _nft_key(expr) == key:
        return 0, 0
    if isinstance(expr, dict) and len(expr) == 1:
        op, args = next(iter(expr.items()))
        if op in ("&", "|", "^") and isinstance(args, list) and len(args) == 2 and isinstance(args[1], int):
            value, changed = _nft_changed(args[0], key)
            operand = args[1] & FULL_MARK
            if op == "&":
                return value & operand, changed | (~operand & FULL_MARK)
            return value | operand, changed | operand
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr & FULL_MARK, FULL_MARK
    return 0, FULL_MARK


def _nft_expr_marks(expr: dict[str, Any]) -> list[tuple[int, int, str, str]]:
    if isinstance(match := expr.get("match"), dict):
        left = match.get("left")
        mask = FULL_MARK
        if isinstance(left, dict) and isinstance(args := left.get("&"), list) and len(args) == 2:
            left, mask = args[0], args[1] if isinstance(args[1], int) else FULL_MARK
        if (key := _nft_key(left)) is not None:
            right = match.get("right")
            value, right_mask = _nft_value_bits(right)
            mask &= right_mask
            shown = "a set" if isinstance(right, dict) and "prefix" not in right else f"{value & mask:#x}"
            lhs = key if mask == FULL_MARK else f"{key} & {mask:#x}"
            return [(value & mask, mask, MATCH, f"{lhs} {match.get('op', '==')} {shown}")]
    elif isinstance(mangle := expr.get("mangle"), dict):
        if (key := _nft_key(mangle.get("key"))) is not None:
            value, changed = _nft_changed(mangle.get("value"), key)
            if isinstance(mangle.get("value"), int):
                desc = f"{key} set {value:#x}"
            elif changed == FULL_MARK:
                desc = f"{key} set from an expression (all bits)"
            else:
                desc = f"{key} set bits {changed:#x} (to {value:#x})"
            return [(value, changed, SET, desc)]
    elif isinstance(xt := expr.get("xt"), dict) and xt.get("name") in _XT_MARKS:
        flag = "-j" if xt.get("type") == "target" else "-m"
        text = f"iptables-nft {flag} {xt['name']} (its values are hidden from nft)"
        return [(0, FULL_MARK, SET, text)]
    return []


def parse_nft_marks(text: str, skip: Collection[tuple[str, str]] = ()) -> list[MarkSeen]:
    """Marks the rules of `nft -j list ruleset` match or set, except in netjail's own tables and
    in the (family, table) pairs `skip` names (iptables-nft's, read from iptables-nft-save)."""
    seen: list[MarkSeen] = []
    for item in json.loads(text).get("nftables", []):
        rule = item.get("rule")
        if not isinstance(rule, dict):
            continue
        family, table = rule.get("family", "?"), rule.get("table", "?")
        if table.startswith(OWN_NFT_TABLE_PREFIX) or (family, table) in skip:
            continue
        where = f"nft {family} {table} {rule.get('chain', '?')} handle {rule.get('handle', '?')}"
        for expr in rule.get("expr", []):
            if isinstance(expr, dict):
                for value, mask, kind, desc in _nft_expr_marks(expr):
                    seen.append(MarkSeen(value, mask, kind, f"{where}: {desc}"))
    return seen


class FwmarkRule(NamedTuple):
    """One `ip rule` entry with a fwmark selector (from pyroute2's FRA_* attributes)."""

    family: str  # "IPv4" | "IPv6"
    priority: int
    fwmark: int
    fwmask: int
    table: int
    invert: bool


def fwmark_marks(rules: Iterable[FwmarkRule]) -> list[MarkSeen]:
    seen = []
    for r in rules:
        mark = f"{r.fwmark:#x}" + ("" if r.fwmask == FULL_MARK else f"/{r.fwmask:#x}")
        sel = f"{'not ' if r.invert else ''}fwmark {mark}"
        where = f"ip rule ({r.family}) pref {r.priority}: {sel} lookup {r.table}"
        seen.append(MarkSeen(r.fwmark & r.fwmask, r.fwmask, MATCH, where))
    return seen


SOCKET = "socket"  # a socket's own mark (SO_MARK): every packet of it carries the value
_NLMSG = struct.Struct("=IH")
_DIAG_MSG = struct.Struct("=BB2x2s2x16s44xI")  # inet_diag_msg: family, state, sport, src, ..., inode
_RTATTR = struct.Struct("=HH")
INET_DIAG_MARK = 15  # linux/inet_diag.h; the kernel adds it for a CAP_NET_ADMIN requester


class MarkedSocket(NamedTuple):
    family: int
    inode: int
    local_addr: str
    local_port: int
    mark: int


def parse_diag_marks(data: bytes) -> tuple[list[MarkedSocket], bool]:
    """Sockets with a non-zero INET_DIAG_MARK in one recv() of a sock_diag dump; True at
    NLMSG_DONE. An NLMSG_ERROR (no udp_diag ...) ends the dump too: nothing more to read."""
    found: list[MarkedSocket] = []
    off = 0
    while off + _NLMSG.size <= len(data):
        length, kind = _NLMSG.unpack_from(data, off)
        if kind in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
            return found, True
        end = off + length
        if length < 16 + 72 or end > len(data):
            return found, True
        family, _, port, src, inode = _DIAG_MSG.unpack_from(data, off + 16)
        at = off + 16 + 72
        while at + _RTATTR.size <= end:
            alen, atype = _RTATTR.unpack_from(data, at)
            if alen < _RTATTR.size:
                break
            if (
                atype == INET_DIAG_MARK
                and alen >= 8
                and (mark := int.from_bytes(data[at + 4 : at + 8], "little"))
            ):
                width = 4 if family == socket.AF_INET else 16
                addr = socket.inet_ntop(family, src[:width])
                found.append(MarkedSocket(family, inode, addr, int.from_bytes(port, "big"), mark))
            at += (alen + 3) & ~3
        off += (length + 3) & ~3
    return found, False


def socket_marks_seen(
    sockets: Iterable[tuple[str, MarkedSocket]], owners: Mapping[int, str], own_marks: Collection[int]
) -> list[MarkSeen]:
    """`sockets`: (proto, socket); `owners`: inode -> "PID 12 (name)"; marks of netjail's jails
    (`own_marks`) are its own and not listed."""
    seen = []
    for proto, s in sockets:
        if s.mark in own_marks:
            continue
        addr = f"[{s.local_addr}]" if ":" in s.local_addr else s.local_addr
        who = f" of {owners[s.inode]}" if s.inode in owners else ""
        seen.append(
            MarkSeen(s.mark, FULL_MARK, SOCKET, f"socket:[{s.inode}] {proto} {addr}:{s.local_port}{who}")
        )
    return seen
