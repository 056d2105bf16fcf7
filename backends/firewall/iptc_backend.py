"""The python-iptables (xtables-legacy) backend of `Firewall`.

Shape (see base.py): per family, NETJAIL-OUT / NETJAIL-IN / NETJAIL-FWD dispatch chains, each
reached by one jump (`-m comment --comment netjail`) at the top of OUTPUT / INPUT / FORWARD, and
per jail NJ-O-<jail> / NJ-I-<jail> / NJ-F-<jail> holding its allow RETURNs then a DROP.

Decisions worth knowing:

- Every jail gets NJ-O and NJ-I chains in *both* families, even with no selectors there, so
  counters, read_jail and jail_names see the same jails whatever the families in use. NJ-F chains
  exist only for jails with forward selectors or allow entries, and NETJAIL-FWD (with its
  FORWARD jump) only while some jail has one: FORWARD is where Docker and kube-proxy insist on
  being first, so netjail stays out of it unless asked.
- A dispatch chain and its built-in jump exist exactly while some jail chain of that direction
  exists: removing the last jail leaves the built-in chains as netjail found them.
- A family whose table is unavailable (IPv6 disabled, no ip6_tables) is skipped: its matches
  are dropped from what a sync writes (families.py says which; block and run say so), and a
  change that still needs it fails with UnsupportedEnvironment.
- Each change is planned against a fresh libiptc copy of the table, under the xtables lock, and
  committed in one table replace per family. A commit that finds the table changed (EAGAIN) is
  re-planned from a fresh copy and retried. Both families are planned before either commits; if
  the second family then fails, the first one is put back as it was (counters of rules that
  stayed survive), so a change lands in both families or in neither.
- A table replace makes the kernel re-check every rule in it, and a `-m cgroup --path` rule
  whose cgroup was deleted fails that check: from then on *every* iptables-legacy commit in the
  network namespace fails with EINVAL, other tools' included. So every change also drops
  selectors whose cgroup no longer exists (they could never match again anyway), and a sync that
  asks for a missing cgroup is refused before anything is written.
- A jail's fallback sets (fallback_sets.py) are created and their members synced (added and
  deleted by difference, never flushed: a re-sync opens no gap) before the rules using them are
  committed, and destroyed after the rules referencing them are gone (the kernel refuses to
  destroy a referenced set). pyroute2 is imported only when some jail has or had a set.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from netjail.backends.errors import NetjailError, OperationFailed, UnsupportedEnvironment
from netjail.backends.firewall import families, log_rule, rule_build
from netjail.backends.firewall.base import (
    BUILTIN,
    DISPATCH,
    JAIL_CHAIN_PREFIX,
    Firewall,
    JailRules,
    Match,
    SetEntry,
    jail_chain,
)
from netjail.backends.firewall.counters import fingerprint, read_counters
from netjail.backends.firewall.fallback_sets import (
    GATE,
    SET_PREFIXES,
    entries_from_members,
    jail_set_names,
    members,
    set_kind,
    set_name,
)
from netjail.backends.firewall.ipsets import Ipsets
from netjail.backends.firewall.lanes import LANES, Lane, lane_for
from netjail.backends.firewall.libiptc import CommitConflict, Table
from netjail.backends.firewall.matches import (
    DIRECTIONS,
    FAMILIES,
    allow,
    canonical_rules,
    families_used,
    selectors,
    uses_forward,
)
from netjail.backends.firewall.plan import (
    Append,
    Current,
    Delete,
    Edit,
    Insert,
    RuleKey,
    edit_builtin,
    edit_dispatch,
    edit_jail_chain,
    edit_lane,
)
from netjail.backends.firewall.registry import IPTABLES, BackendInfo
from netjail.backends.firewall.retry import commit_with_retries
from netjail.backends.firewall.rule_build import build_entry
from netjail.backends.firewall.xt_layout import LAYOUTS, SET_INDEX_PREFIX, decode_entry_cached
from netjail.backends.firewall.xtables_lock import xtables_lock
from netjail.backends.jails.names import check_jail_name
from netjail.backends.model import JailCounters
from netjail.backends.system.cgroupfs import MOUNTINFO, find_cgroup2

if TYPE_CHECKING:
    from netjail.backends.firewall.nat import Masquerade

COMMENT = "netjail"

Changes = Mapping[str, JailRules | None]  # jail -> wanted rules, None to remove
CurrentRule = tuple[str, RuleKey | None]


def _digests() -> dict[str, bytes | None]:
    return {fam: fingerprint(LAYOUTS[fam]) for fam in FAMILIES}


def cgroup2_mount(mountinfo: Path = MOUNTINFO) -> Path | None:
    """Where this process sees the cgroup2 hierarchy: cgroupfs's answer, the one netjail's
    cgroups are made under (a rule's cgroup is checked there)."""
    found = find_cgroup2(mountinfo)
    return Path(found.path) if found else None


class IptcFirewall(Firewall):
    name = "iptables-legacy (python-iptables)"

    def __init__(self, *, lock_timeout: float = 10.0) -> None:
        self._lock_timeout = lock_timeout
        # libiptc handles and python-iptables' xtables state are not thread-safe.
        self._mutex = threading.RLock()
        # What the kernel was seen holding: jail -> rules, valid while every table's digest is
        # the one read right after (counters.fingerprint). A watcher pass that would change
        # nothing then costs two table reads, not the decoding of every rule.
        self._verified: dict[str, JailRules] = {}
        self._verified_digests: dict[str, bytes | None] | None = None
        self._masquerade: Masquerade | None = None

    # ---- Firewall API -------------------------------------------------------------------------

    def sync_jail(self, rules: JailRules) -> None:
        self.sync_jails([rules])

    def sync_jails(self, rules: Iterable[JailRules]) -> None:
        wanted: dict[str, JailRules | None] = {}
        writable = families.usable(self.coverage())
        if not writable:
            raise UnsupportedEnvironment(
                f"no filter table opens here ({'; '.join(s.reason for s in self.coverage())})"
            )
        for r in rules:
            c = families.only(canonical_rules(r), writable)  # a family it cannot filter is skipped
            wanted[c.name] = c
        if not wanted:
            return
        with self._mutex:
            if self._unchanged(wanted):
                return
        self._check_cgroups(r for r in wanted.values() if r is not None)
        with self._mutex:
            created, stale = self._sync_sets(wanted)
            try:
                referenced = self._change(wanted)
            except BaseException:
                self._destroy_sets(created, quiet=True)  # nothing references them
                self._verified_digests = None
                raise
            self._verified.update((n, r) for n, r in wanted.items() if r is not None)
            keep = {n for r in wanted.values() if r for n in _set_names(r)}
            self._destroy_sets((stale | referenced) - keep)
            if stale or referenced - keep:
                self._sync_gate()  # the ports of the sets gone leave the gate (or it goes)

    def _unchanged(self, wanted: Mapping[str, JailRules | None]) -> bool:
        """Whether the kernel holds `wanted` already, by the verified rules and the tables'
        digests. Any change by anyone (another netjail, a user's iptables) changes a digest and
        forgets every verified jail. Jails with address sets are always synced: the sets'
        contents are not in the tables."""
        digests = _digests()
        if digests != self._verified_digests:
            self._verified = {}
            return False
        return all(
            r is not None and not r.set_entries and self._verified.get(n) == r for n, r in wanted.items()
        )

    def remove_jail(self, name: str) -> None:
        name = check_jail_name(name)
        with self._mutex:
            self._verified.pop(name, None)
            referenced = self._change({name: None})
            if referenced or "pyroute2.ipset" in sys.modules:  # leftovers of a crash: cheap now
                self._destroy_sets(referenced | jail_set_names(name))
                self._sync_gate()

    def reset(self) -> None:
        with self._mutex:
            self._verified, self._verified_digests = {}, None
            self._change(None)
            with Ipsets() as sets:
                self._destroy_sets(sets.names(), sets)

    def read_jail(self, name: str) -> JailRules | None:
        check_jail_name(name)
        found = False
        sel: dict[str, list[Match]] = {d: [] for d in DIRECTIONS}
        alw: dict[str, list[Match]] = {d: [] for d in DIRECTIONS}
        with self._mutex:
            for fam in FAMILIES:
                table = self._open(fam, required=False)
                if table is None:
                    continue
                with table:
                    held = self._read_jails(table, [name])[name]
                if held is not None:
                    found = True
                    for d in DIRECTIONS:
                        sel[d] += selectors(held, d)
                        alw[d] += allow(held, d)
        if not found:
            return None
        used = {m.match_set for d in DIRECTIONS for m in sel[d] if m.match_set}
        return _jail_rules(name, sel, alw, self._read_set_entries(used) if used else ())

    def jail_names(self) -> set[str]:
        names: set[str] = set()
        with self._mutex:
            for fam in FAMILIES:
                table = self._open(fam, required=False)
                if table is not None:
                    with table:
                        names |= _jails_in(table.chains())
        return names

    def counters(self) -> Mapping[str, JailCounters]:
        return read_counters()

    def coverage(self) -> tuple[families.FamilySupport, ...]:
        return families.support()

    # masquerade lives in the nat table, its own transactions (nat.py), loaded on first use
    def _nat(self) -> Masquerade:
        if self._masquerade is None:
            from netjail.backends.firewall.nat import Masquerade

            self._masquerade = Masquerade(lock_timeout=self._lock_timeout)
        return self._masquerade

    def sync_masquerade(self, jail: str, sources: Sequence[str], out_iface: str | None = None) -> None:
        self._nat().sync_masquerade(jail, sources, out_iface)

    def remove_masquerade(self, jail: str) -> None:
        self._nat().remove(jail)

    def masquerades(self) -> dict[str, tuple[str, ...]]:
        return self._nat().read()

    def reset_masquerade(self) -> None:
        self._nat().reset()

    def describe(self) -> BackendInfo:
        return IPTABLES

    @classmethod
    def warm_up(cls) -> None:
        rule_build.warm_up()

    # ---- transactions -------------------------------------------------------------------------

    def _open(self, family: str, *, required: bool) -> Table | None:
        try:
            return Table(family)
        except UnsupportedEnvironment:
            if required:
                raise
            return None

    def _change(self, changes: Changes | None, families: Iterable[str] = FAMILIES) -> set[str]:
        """Make the kernel hold `changes` (None: remove every jail) in every available family;
        returns the sets the changed jails' rules referenced before."""
        needed = set() if changes is None else {f for r in changes.values() if r for f in families_used(r)}
        pending = list(families)
        committed: dict[str, dict[str, JailRules | None]] = {}  # family -> its jails before
        referenced: set[str] = set()

        def attempt() -> bool:
            self._attempt(changes, pending, needed, committed)
            for before in committed.values():
                referenced.update(n for r in before.values() if r for n in _set_names(r))
            return not pending

        with self._mutex:
            commit_with_retries(
                attempt,
                lambda cause: self._undo(committed, cause),
                "the filter table kept changing under netjail "
                "(a writer that does not take the xtables lock?)",
            )
        return referenced

    def _attempt(
        self,
        changes: Changes | None,
        pending: list[str],
        needed: set[str],
        committed: dict[str, dict[str, JailRules | None]],
    ) -> None:
        """One plan-and-commit round under the xtables lock; families committed leave `pending`."""
        with xtables_lock(self._lock_timeout):
            staged: list[tuple[Table, dict[str, JailRules | None]]] = []
            try:
                for fam in list(pending):
                    table = self._open(fam, required=fam in needed)
                    if table is None:
                        pending.remove(fam)
                        continue
                    staged.append((table, {}))  # from here on `finally` closes it
                    fam_changes = changes if changes is not None else dict.fromkeys(_jails_in(table.chains()))
                    before = self._read_jails(table, fam_changes)  # to undo a half-applied change
                    staged[-1] = (table, before)
                    self._stage(table, fam_changes)
                for table, before in staged:
                    try:
                        table.commit()
                    except CommitConflict:
                        return  # the rest is re-planned from fresh copies next round
                    except OperationFailed as exc:
                        raise self._explain(table, exc) from None
                    committed.setdefault(table.family, before)
                    pending.remove(table.family)
                # read under the lock: no writer that takes it has changed them since
                self._verified_digests = _digests()
            finally:
                for table, _ in staged:
                    table.close()

    def _undo(self, committed: dict[str, dict[str, JailRules | None]], cause: NetjailError) -> None:
        """Put families already committed by a failing change back as they were."""
        for fam, before in list(committed.items()):
            committed.pop(fam)
            try:
                self._change(before, families=[fam])
            except NetjailError as exc:
                cause.args = (f"{cause}; undoing the {fam} half failed too: {exc}",)

    # ---- reading ------------------------------------------------------------------------------

    def _current(self, table: Table, chain: str, targets: Collection[str] | None = None) -> list[CurrentRule]:
        """(target, key) of each rule of a chain. The key is None when the rule is undecodable, and
        when `targets` is given and the rule jumps elsewhere, unless it holds a cgroup match
        (which `_without_dead_cgroups` must see): dispatch chains hold every jail's selectors,
        and a sync only needs the keys of the jails it touches."""
        layout = LAYOUTS[table.family]
        out: list[CurrentRule] = []
        names: dict[str, str | None] = {}
        for raw, target in table.rules(chain):
            key: RuleKey | None = None
            if targets is None or target in targets or b"cgroup" in raw:
                decoded = decode_entry_cached(layout, raw)
                if decoded is not None:
                    m: Match | None = decoded.match
                    if decoded.match.match_set and decoded.match.match_set.startswith(SET_INDEX_PREFIX):
                        m = _named_set(decoded.match, names)
                    if m is not None:
                        key = (decoded.log_target or target, m, decoded.comment)
            out.append((target, key))
        return out

    # ---- sets ---------------------------------------------------------------------------------

    def _sync_sets(self, wanted: Mapping[str, JailRules | None]) -> tuple[set[str], set[str]]:
        """Create the sets the wanted rules use and make their members exactly the wanted ones.
        Returns (sets created now, sets of these jails that exist and are no longer wanted)."""
        want: dict[str, tuple[str, str, set[tuple[str, int, int, int, str]]]] = {}
        for r in wanted.values():
            for e in r.set_entries if r else ():
                name = set_name(e.family, r.name, e.kind) if r else ""
                want.setdefault(name, (e.family, e.kind, set()))[2].update(members(e))
        if not want:
            return set(), set()
        created: set[str] = set()
        added: set[int] = set()
        with Ipsets() as sets:
            exists = sets.names()
            try:
                for name, (fam, kind, wanted_members) in sorted(want.items()):
                    held = sets.members(name, kind) if name in exists else None
                    if held is None:
                        sets.create(name, fam, kind)
                        created.add(name)
                        held = set()
                    add, delete = wanted_members - held, held - wanted_members
                    sets.change(name, fam, kind, add, delete)
                    added |= {m[3] for m in add}
                # before the commit: the gate must cover the new members. Ports of members that
                # went stay until the next recount (after a set is destroyed): a gate only has to
                # be a superset, and a re-sync then costs no dump of every set
                if GATE not in exists:
                    sets.create_gate(GATE)
                    for other in exists - set(want):  # another jail's sets (none usually)
                        of = set_kind(other)
                        if of is not None:
                            added |= {m[3] for m in sets.members(other, of[1]) or ()}
                sets.change_gate(GATE, added, ())
            except BaseException:
                self._destroy_sets(created, sets, quiet=True)
                raise
        ours = {n for j in wanted for n in jail_set_names(j)}
        return created, (exists & ours) - set(want)

    def _sync_gate(self, sets: Ipsets | None = None) -> None:
        """The gate set (fallback_sets.GATE) holds every local port of every jail's sets, and
        exists exactly while some jail set does (its rules go with the last set rule)."""
        if sets is None:
            with Ipsets() as own:
                self._sync_gate(own)
            return
        ports: set[int] = set()
        names = sets.names()
        for name in names:
            kind = set_kind(name)
            if kind is not None:
                ports |= {m[3] for m in sets.members(name, kind[1]) or ()}
        held = sets.gate_ports(GATE) if GATE in names else None
        if not ports:
            if held is not None:
                self._destroy_sets([GATE], sets)
            return
        if held is None:
            sets.create_gate(GATE)
            held = set()
        sets.change_gate(GATE, ports - held, held - ports)

    def _destroy_sets(self, names: Iterable[str], sets: Ipsets | None = None, *, quiet: bool = False) -> None:
        names = sorted(n for n in names if n.startswith(SET_PREFIXES))
        if not names:
            return
        if sets is None:
            with Ipsets() as own:
                self._destroy_sets(names, own, quiet=quiet)
            return
        errors: list[str] = []
        for n in names:
            try:
                sets.destroy(n)
            except NetjailError as exc:
                errors.append(str(exc))
        if errors and not quiet:
            raise OperationFailed("; ".join(errors))

    def _read_set_entries(self, names: Iterable[str]) -> tuple[SetEntry, ...]:
        out: list[SetEntry] = []
        with Ipsets() as sets:
            for name in sorted(names):
                kind = set_kind(name)
                if kind is None:
                    continue
                found = sets.members(name, kind[1])
                out += entries_from_members(kind[0], kind[1], found or ())
        return tuple(out)

    def _read_jails(self, table: Table, names: Iterable[str]) -> dict[str, JailRules | None]:
        """What one family's table holds for some jails (None: no chains)."""
        chains = set(table.chains())
        out: dict[str, JailRules | None] = {}
        names = list(names)
        dispatch: dict[str, list[CurrentRule]] = {}
        for d in DIRECTIONS:
            targets = {jail_chain(d, n) for n in names}
            dispatch[d] = [
                rule
                for chain in (DISPATCH[d], *(lane.chain for lane in LANES[d]))
                if chain in chains
                for rule in self._current(table, chain, targets)
            ]
        for name in names:
            if not any(jail_chain(d, name) in chains for d in DIRECTIONS):
                out[name] = None
                continue
            sel: dict[str, list[Match]] = {d: [] for d in DIRECTIONS}
            alw: dict[str, list[Match]] = {d: [] for d in DIRECTIONS}
            for d in DIRECTIONS:
                chain = jail_chain(d, name)
                if chain not in chains:
                    continue
                alw[d] = [k[1] for _, k in self._current(table, chain) if k and k[0] == "RETURN" and not k[2]]
                sel[d] = [k[1] for target, k in dispatch[d] if target == chain and k and not k[2]]
            out[name] = _jail_rules(name, sel, alw)
        return out

    # ---- planning -----------------------------------------------------------------------------

    def _stage(self, table: Table, changes: Changes) -> None:
        """Edit libiptc's in-memory copy of one family's table so it holds `changes`."""
        fam = table.family
        chains = set(table.chains())
        everything = Match(fam)
        cgroups_root = cgroup2_mount()
        for d in DIRECTIONS:
            prefix = JAIL_CHAIN_PREFIX[d]
            live = {c for c in chains if c.startswith(prefix)}
            for name, rules in changes.items():
                chain = jail_chain(d, name)
                if rules is not None and (d != "fwd" or uses_forward(rules)):
                    live.add(chain)
                else:
                    live.discard(chain)

            for name, rules in changes.items():
                chain = jail_chain(d, name)
                if chain not in live or rules is None:
                    continue
                current: Current = []
                if chain in chains:
                    current = self._current(table, chain)
                else:
                    table.create_chain(chain)
                body = [("RETURN", m, None) for m in allow(rules, d) if m.family == fam]
                log = _log_rule(fam, d, name)
                self._run(table, chain, edit_jail_chain(current, body, ("DROP", everything, None), log))

            dispatch = DISPATCH[d]
            # each changed jail's selectors: into the dispatch chain or into their lane's
            wanted: dict[str, list[RuleKey]] = {}
            lane_wanted: dict[Lane, dict[str, list[RuleKey]]] = {lane: {} for lane in LANES[d]}
            for name, rules in changes.items():
                chain = jail_chain(d, name)
                if rules is None or chain not in live:
                    continue
                wanted[chain] = []
                for lane in LANES[d]:
                    lane_wanted[lane][chain] = []
                for m in selectors(rules, d):
                    if m.family == fam:
                        into = lane_for(d, m)
                        (lane_wanted[into][chain] if into else wanted[chain]).append((chain, m, None))
            targets = set(live)
            emptied: list[str] = []
            for lane in LANES[d]:
                lane_body = self._stage_lane(table, lane, chains, lane_wanted[lane], live, cgroups_root)
                wanted[lane.chain] = lane.gates(fam, lane_body)
                if lane_body:
                    targets.add(lane.chain)
                elif lane.chain in chains:
                    emptied.append(lane.chain)
            if live:
                current = []
                if dispatch in chains:
                    current = _without_dead_cgroups(self._current(table, dispatch, set(wanted)), cgroups_root)
                else:
                    table.create_chain(dispatch)
                self._run(table, dispatch, edit_dispatch(current, wanted, targets))

            if live or dispatch in chains:
                builtin = BUILTIN[d]
                jump = (dispatch, everything, COMMENT) if live else None
                self._run(
                    table, builtin, edit_builtin(self._current(table, builtin, {dispatch}), dispatch, jump)
                )
            if not live and dispatch in chains:
                table.delete_chain(dispatch)
            for chain in emptied:  # its gates are gone with the edit or the chain above
                table.delete_chain(chain)
            for name in changes:
                chain = jail_chain(d, name)
                if chain in chains and chain not in live:
                    table.delete_chain(chain)

    def _stage_lane(
        self,
        table: Table,
        lane: Lane,
        chains: Collection[str],
        wanted: Mapping[str, list[RuleKey]],
        live: Collection[str],
        cgroups_root: Path | None,
    ) -> list[Match]:
        """Edit one lane chain to hold `wanted` for the jails changed and what it holds for the
        others; returns every selector it holds then (empty: the lane is not needed)."""
        fam = table.family
        current: list[CurrentRule] = []
        if lane.chain in chains:
            current = _without_dead_cgroups(self._current(table, lane.chain), cgroups_root)
        body = [key[1] for target, key in current if key and target in live and target not in wanted]
        body += [key[1] for keys in wanted.values() for key in keys]
        if body:
            if lane.chain not in chains:
                table.create_chain(lane.chain)
            head, tail = lane.head(fam, body), lane.tail(fam)
            self._run(table, lane.chain, edit_lane(current, head, wanted, set(live), tail))
        return body

    def _run(self, table: Table, chain: str, edits: list[Edit]) -> None:
        for e in edits:
            if isinstance(e, Delete):
                table.delete(chain, e.position)
            elif isinstance(e, Insert):
                target, match, comment = e.key
                table.insert(chain, build_entry(match, target, comment), e.position)
            elif isinstance(e, Append):
                target, match, comment = e.key
                table.append(chain, build_entry(match, target, comment))

    # ---- cgroups ------------------------------------------------------------------------------

    def _check_cgroups(self, rules: Iterable[JailRules]) -> None:
        paths = {
            m.cgroup
            for r in rules
            for d in DIRECTIONS
            for m in (*selectors(r, d), *allow(r, d))
            if m.cgroup is not None
        }
        if not paths:
            return
        root = cgroup2_mount()
        if root is None:
            raise UnsupportedEnvironment("cgroup2 is not mounted: cgroup matches need it")
        for path in sorted(paths):
            if not (root / path.lstrip("/")).is_dir():
                raise OperationFailed(f"cgroup {path} does not exist (create it before adding rules for it)")

    def _explain(self, table: Table, exc: OperationFailed) -> OperationFailed:
        """Name deleted cgroups still referenced by rules when the kernel refuses the table."""
        if "Invalid argument" not in str(exc):
            return exc
        root = cgroup2_mount()
        dead = sorted(
            {
                key[1].cgroup
                for chain in table.chains()
                for _, key in self._current(table, chain)
                if key and key[1].cgroup and (root is None or not (root / key[1].cgroup.lstrip("/")).is_dir())
            }
        )
        if not dead:
            return exc
        return OperationFailed(
            f"{exc} (rules still match cgroups that no longer exist: {', '.join(dead)}; the kernel "
            "refuses every table that holds them)"
        )


_LOG_AVAILABLE: dict[str, bool] = {}


def _log_rule(family: str, direction: str, jail: str) -> RuleKey | None:
    """The jail chain's copy to the attempts log (log_rule.py), or None: turned off
    (NETJAIL_ATTEMPTS=off), or this kernel or xtables has no NFLOG target or limit match. A
    jail blocks the same without it; `doctor` says why nothing is logged."""
    if not log_rule.enabled():
        return None
    match = Match(family, log_limit=True)
    key = (log_rule.target(direction, jail), match, None)
    if family not in _LOG_AVAILABLE:
        try:
            rule_build.build_entry(match, key[0])
            _LOG_AVAILABLE[family] = True
        except (UnsupportedEnvironment, OperationFailed):
            _LOG_AVAILABLE[family] = False
    return key if _LOG_AVAILABLE[family] else None


def _jail_rules(
    name: str,
    sel: Mapping[str, list[Match]],
    alw: Mapping[str, list[Match]],
    entries: tuple[SetEntry, ...] = (),
) -> JailRules:
    return JailRules(
        name=name,
        out_selectors=tuple(sel["out"]),
        in_selectors=tuple(sel["in"]),
        fwd_selectors=tuple(sel["fwd"]),
        out_allow=tuple(alw["out"]),
        in_allow=tuple(alw["in"]),
        fwd_allow=tuple(alw["fwd"]),
        set_entries=entries,
    )


def _set_names(rules: JailRules) -> set[str]:
    return {m.match_set for d in DIRECTIONS for m in selectors(rules, d) if m.match_set}


def _named_set(m: Match, names: dict[str, str | None]) -> Match | None:
    """A decoded set match with the set's name instead of its index (None: no such set)."""
    index = m.match_set or ""
    if index not in names:
        with Ipsets() as sets:
            names[index] = sets.name_of(int(index[len(SET_INDEX_PREFIX) :]))
    name = names[index]
    return None if name is None else replace(m, match_set=name)


def _jails_in(chains: Iterable[str]) -> set[str]:
    prefixes = tuple(JAIL_CHAIN_PREFIX.values())
    return {c[len(prefixes[0]) :] for c in chains if c.startswith(prefixes)}


def _without_dead_cgroups(current: Current, root: Path | None) -> list[CurrentRule]:
    """Selectors of deleted cgroups lose their target, so the plan deletes them."""
    out: list[CurrentRule] = []
    for target, key in current:
        if key and key[1].cgroup and root is not None and not (root / key[1].cgroup.lstrip("/")).is_dir():
            out.append(("", None))
        else:
            out.append((target, key))
    return out
