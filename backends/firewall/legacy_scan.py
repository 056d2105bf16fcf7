"""What the xtables-legacy tables hold besides netjail: foreign rules, chains and policies, and
the jails netjail's own chains stand for. The backend choice (firewall/choice.py) asks it on
every command that picks a backend with nothing recorded, so it is the counters reader's raw
table read (counters.py: one getsockopt pair per table, no libiptc) and one walk per table.

Only the tables the kernel lists in /proc/net/ip_tables_names (ip6_tables_names) are read:
asking for another one would instantiate it in this network namespace (a table is created on
first use), a side effect a read must not have. No table listed: nobody wrote legacy rules here.

In a table's blob (include/uapi/linux/netfilter_ipv4/ip_tables.h) a built-in chain runs from
its hook's entry to its policy entry (`underflow`); a user chain starts with an ERROR-target
entry naming it and ends with an unconditional RETURN; the table ends with an ERROR entry
named "ERROR". A jump is a standard target whose verdict is the offset it jumps to: the entry
right after the target chain's header.
"""

from __future__ import annotations

import struct

from netjail.backends.errors import NetjailError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from netjail.backends.firewall.xt_layout import EntryLayout

OWN_CHAIN_PREFIXES = ("NETJAIL-", "NJ-")  # as doctor/parsers.py: netjail's chains and lanes
JAIL_CHAIN_PREFIXES = ("NJ-O-", "NJ-I-", "NJ-F-")  # chains.JAIL_CHAIN_PREFIX: one per jail lane
TABLE_NAMES = {"inet": "/proc/net/ip_tables_names", "inet6": "/proc/net/ip6_tables_names"}
FAMILY_LABEL = {"inet": "ip", "inet6": "ip6"}
HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_OFFSETS = struct.Struct("=HH")
_VERDICT = struct.Struct("=i")
_ERROR_TARGET = b"ERROR\0"


class LegacyScan:
    """What one scan found: `foreign` one phrase per table holding something not netjail's
    ("ip filter: 1 rule in OUTPUT"), `jails` the names netjail's jail chains carry, `unread`
    why some table could not be read ("" when all were)."""

    __slots__ = ("foreign", "jails", "unread")

    def __init__(
        self, foreign: tuple[str, ...] = (), jails: frozenset[str] = frozenset(), unread: str = ""
    ) -> None:
        self.foreign, self.jails, self.unread = foreign, jails, unread

    def __repr__(self) -> str:
        return f"LegacyScan(foreign={self.foreign!r}, jails={sorted(self.jails)!r}, unread={self.unread!r})"


def listed_tables(family: str) -> list[str] | None:
    """The legacy tables this network namespace has for `family`; None when the kernel has no
    xtables-legacy for it (no such file)."""
    try:
        with open(TABLE_NAMES[family], "rb") as f:
            return f.read().decode().split()
    except FileNotFoundError:
        return None


def _is_own(chain: str) -> bool:
    return chain.startswith(OWN_CHAIN_PREFIXES)


def walk(
    layout: EntryLayout, blob: memoryview, hooks: int, entry: tuple[int, ...], underflow: tuple[int, ...]
) -> tuple[dict[str, int], list[str], list[str], set[str]]:
    """(foreign rules per built-in chain, foreign user chains, non-ACCEPT policies as
    "CHAIN POLICY", jail names) of one table blob."""
    from netjail.backends.firewall.xt_layout import VERDICT_ACCEPT, VERDICT_DROP, XT_FUNCTION_MAXNAMELEN

    at_offsets = layout.target_offset
    unpack_offsets, unpack_verdict = _OFFSETS.unpack_from, _VERDICT.unpack_from
    starts = {entry[h]: HOOKS[h] for h in range(len(HOOKS)) if hooks >> h & 1}
    policies = {underflow[h] for h in range(len(HOOKS)) if hooks >> h & 1}
    entries: list[tuple[int, int, str | None]] = []  # (offset, target offset, user chain name)
    first_rule: dict[int, str] = {}  # a jump's verdict -> the user chain it enters
    off, end = 0, len(blob)
    while off < end:
        target_offset, next_offset = unpack_offsets(blob, off + at_offsets)
        if next_offset <= 0:
            raise ValueError(f"corrupt {layout.family} rule blob at offset {off}")
        target = off + target_offset
        name = None
        if blob[target + 2 : target + 8] == _ERROR_TARGET:
            name_at = target + 32
            name = (
                bytes(blob[name_at : name_at + XT_FUNCTION_MAXNAMELEN])
                .split(b"\0", 1)[0]
                .decode(errors="replace")
            )
            first_rule[off + next_offset] = name
        entries.append((off, target, name))
        off += next_offset
    rules: dict[str, int] = {}
    chains: list[str] = []
    bad_policies: list[str] = []
    jails: set[str] = set()
    builtin: str | None = None  # the built-in chain being walked (None: a user chain)
    for off, target, name in entries:
        if off in starts:
            builtin = starts[off]
        if name is not None:  # a user chain's header, or the table's end
            builtin = None
            if name == "ERROR":
                continue
            if not _is_own(name):
                chains.append(name)
            elif name.startswith(JAIL_CHAIN_PREFIXES):
                jails.add(name[len(JAIL_CHAIN_PREFIXES[0]) :])
            continue
        if builtin is None:
            continue  # a user chain's rule: its chain says whose it is
        standard = blob[target + 2] == 0  # an empty target name: a verdict or a jump
        verdict = unpack_verdict(blob, target + 32)[0] if standard else None
        if off in policies:
            if verdict != VERDICT_ACCEPT:
                bad_policies.append(f"{builtin} {'DROP' if verdict == VERDICT_DROP else verdict}")
            builtin = None
            continue
        if verdict is not None and verdict >= 0 and _is_own(first_rule.get(verdict, "")):
            continue  # netjail's jump into its own chain
        rules[builtin] = rules.get(builtin, 0) + 1
    return rules, chains, bad_policies, jails


def _phrase(where: str, rules: dict[str, int], chains: list[str], policies: list[str]) -> str | None:
    parts = [f"{n} rule{'s' if n > 1 else ''} in {chain}" for chain, n in rules.items()]
    if chains:
        parts.append(f"chain{'s' if len(chains) > 1 else ''} {', '.join(sorted(chains))}")
    parts += [f"policy {p}" for p in policies]
    return f"{where}: {', '.join(parts)}" if parts else None


def scan() -> LegacyScan:
    """Every legacy table of this network namespace, both families. The table reader is
    imported only for a table that exists (~1 ms of imports a command that has none)."""
    foreign: list[str] = []
    jails: set[str] = set()
    unread: list[str] = []
    for family in ("inet", "inet6"):
        label = FAMILY_LABEL[family]
        try:
            tables = listed_tables(family)
        except OSError as exc:  # the file is root's (0440)
            unread.append(f"{TABLE_NAMES[family]}: {exc.strerror}")
            continue
        if not tables:
            continue
        from netjail.backends.firewall.counters import TableUnavailable, read_table_hooks
        from netjail.backends.firewall.xt_layout import LAYOUTS

        layout = LAYOUTS[family]
        for table in tables:
            try:
                blob, hooks, entry, underflow = read_table_hooks(layout, table.encode())
                rules, chains, policies, found = walk(layout, blob, hooks, entry, underflow)
            except TableUnavailable:
                continue  # gone since it was listed
            except (NetjailError, ValueError) as exc:  # no root, a blob that does not parse
                unread.append(f"{label} {table}: {exc}")
                continue
            jails |= found
            if (phrase := _phrase(f"{label} {table}", rules, chains, policies)) is not None:
                foreign.append(phrase)
    return LegacyScan(tuple(foreign), frozenset(jails), "; ".join(unread))
