"""The firewall interface: what the engine asks of any backend (python-iptables now, nftables later).

A backend gets desired JailRules and makes the kernel hold exactly them, reads them back,
removes them, reports per-jail counters as model types (JailCounters), masquerades a netns
jail's veth prefixes, resets everything it owns, and describes itself as data
(registry.BackendInfo: name, limits such as the longest jail name, tools it needs). Choosing a
backend is registry.py's job; nothing outside firewall/ imports a backend module.

How the iptables backend (iptc_backend.py) lays this out:

Shape of what a backend builds, per address family, in the filter table:

    OUTPUT  -> (rule 1) -j NETJAIL-OUT      INPUT -> (rule 1) -j NETJAIL-IN
    FORWARD -> (rule 1) -j NETJAIL-FWD      (only once a jail has forward selectors)

    NETJAIL-OUT:  <selector of jail A> -j NJ-O-A     (one jump per selector: cgroup path,
                  <selector of jail A> -j NJ-O-A      the jail's socket mark, 5-tuple of an
                                                      existing socket, owner ...)
                  <selector of jail B> -j NJ-O-B
                  -m set --match-set nj4-A-c src,src,dst -j NJ-O-A   (sockets that could not
                                                      be marked: one rule per set, any count)
    NJ-O-A:       <allow entry> -j RETURN            (allowed: counted, then the packet goes on
                  <allow entry> -j RETURN             through the rest of the user's OUTPUT rules)
                  -j DROP                            (dropped: counted)

Selectors of one kind that grow with the jails (member cgroups, socket marks) sit in lane chains
behind a few gate rules instead (lanes.py), so traffic of no jail walks a constant few rules.

Selectors decide *who* is jailed, the jail chain decides *what* they may still reach. Allowed
traffic RETURNs instead of ACCEPTing so netjail only ever narrows what the machine's own rules
allow. Everything else in the tables (Docker, ufw, user rules) is never touched.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# the chain names live in chains.py (a leaf: counters.py needs nothing else); exported here too
from netjail.backends.firewall.chains import BUILTIN as BUILTIN
from netjail.backends.firewall.chains import DISPATCH as DISPATCH
from netjail.backends.firewall.chains import JAIL_CHAIN_PREFIX as JAIL_CHAIN_PREFIX
from netjail.backends.firewall.chains import MAX_JAIL_NAME as MAX_JAIL_NAME
from netjail.backends.firewall.chains import jail_chain as jail_chain
from netjail.backends.model import JailCounters

if TYPE_CHECKING:
    from netjail.backends.firewall.families import FamilySupport
    from netjail.backends.firewall.registry import BackendInfo, Limits


@dataclass(frozen=True, slots=True)
class Match:
    """One packet match, for a selector (who) or an allow entry (what). Unset fields match all."""

    family: str  # "inet" | "inet6": the table it goes into
    proto: str | None = None  # "tcp" | "udp" | "icmpv6" (inet6 only)
    src: str | None = None  # CIDR
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    cgroup: str | None = None  # cgroup2 path relative to the mount, e.g. "/netjail/web"
    uid_owner: int | None = None
    gid_owner: int | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    icmp6_type: int | None = None  # with proto "icmpv6": one ICMPv6 type (neighbour discovery)
    mark: int | None = None  # `-m mark --mark MARK/MARK_MASK`: the packet's mark (socket_marks)
    mark_mask: int | None = None
    # `-m socket --nowildcard --restore-skmark` (incoming only): the packet takes the mark of the
    # local socket it is for, so the mark fields after it test that socket (lanes.py)
    socket_mark: bool = False
    # `-m set --match-set MATCH_SET SET_FLAGS`: the packet is in one of netjail's own ipsets
    # (fallback_sets.py), e.g. "nj4-web-c" with "src,src,dst"
    match_set: str | None = None
    set_flags: str | None = None
    # `-m limit --limit RATE --limit-burst BURST` with attempts.prefix's values: the jail chain's
    # log rule, so a flood costs the attempts collector a fixed rate of copies (docs/attempts.md)
    log_limit: bool = False


@dataclass(frozen=True, slots=True)
class SetEntry:
    """One socket in a jail's fallback set (a socket that could not be marked; fallback_sets.py).

    kind "flow": a connected socket, (local address, proto:local port, remote address);
    kind "port": a listener or unconnected UDP socket, (local address or None for a wildcard
    bind, proto:local port). Addresses are plain IPs of `family`, without a prefix length."""

    family: str  # "inet" | "inet6"
    kind: str  # "flow" | "port"
    proto: str  # "tcp" | "udp"
    port: int
    local: str | None = None
    remote: str | None = None


@dataclass(frozen=True, slots=True)
class JailRules:
    """Everything one jail needs in the kernel; `Firewall.sync_jail` makes it so, exactly."""

    name: str
    out_selectors: tuple[Match, ...] = ()
    in_selectors: tuple[Match, ...] = ()
    fwd_selectors: tuple[Match, ...] = ()
    out_allow: tuple[Match, ...] = ()  # RETURN rules in NJ-O-<name>, before its DROP
    in_allow: tuple[Match, ...] = ()
    fwd_allow: tuple[Match, ...] = ()
    # members of the jail's fallback sets, which selectors with `match_set` refer to: the
    # backend creates each set before the rules using it and destroys it after them
    set_entries: tuple[SetEntry, ...] = ()


class Firewall(abc.ABC):
    """A backend owning netjail's chains. Every method is idempotent and commits atomically per
    table, under the xtables lock, retrying when another writer committed in between."""

    name: str = "abstract"  # shown to the user (TUI header, doctor)

    @abc.abstractmethod
    def sync_jail(self, rules: JailRules) -> None:
        """Create or update one jail (both families). Rules already present and unchanged keep
        their counters; jump rules at the top of the built-in chains are ensured."""

    @abc.abstractmethod
    def sync_jails(self, rules: Iterable[JailRules]) -> None:
        """Like sync_jail for several jails in one commit per table."""

    @abc.abstractmethod
    def remove_jail(self, name: str) -> None:
        """Remove a jail's chains and every jump to them (no error when absent)."""

    @abc.abstractmethod
    def read_jail(self, name: str) -> JailRules | None:
        """Read back what the kernel holds for one jail (None when its chains are absent)."""

    @abc.abstractmethod
    def jail_names(self) -> set[str]:
        """Jails that have chains in the kernel (either family)."""

    @abc.abstractmethod
    def counters(self) -> Mapping[str, JailCounters]:
        """Counters of every jail, read in one pass per family (never a walk per jail)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Remove every netjail chain and jump rule; nothing else is touched."""

    @abc.abstractmethod
    def sync_masquerade(self, jail: str, sources: Sequence[str], out_iface: str | None = None) -> None:
        """Source-NAT traffic from `sources` (a netns jail's veth prefixes, either family)
        leaving through `out_iface` (None: any interface): exactly these for the jail."""

    @abc.abstractmethod
    def remove_masquerade(self, jail: str) -> None:
        """Remove the jail's masquerade rules (no error when absent)."""

    @abc.abstractmethod
    def masquerades(self) -> dict[str, tuple[str, ...]]:
        """jail -> the source prefixes it is masqueraded for, read back from the kernel."""

    @abc.abstractmethod
    def reset_masquerade(self) -> None:
        """Remove every masquerade rule of netjail's; nothing else is touched."""

    @abc.abstractmethod
    def describe(self) -> BackendInfo:
        """This backend as data (its registry entry)."""

    def limits(self) -> Limits:
        return self.describe().limits

    @classmethod
    def warm_up(cls) -> None:
        """Load what the first rule change would (libraries, extensions), while a terminal UI
        has not taken the terminal yet: their loading can print (nothing to load: no-op)."""
        return None

    def coverage(self) -> tuple[FamilySupport, ...]:
        """The families this backend can filter here (empty: not known, assume both)."""
        return ()
