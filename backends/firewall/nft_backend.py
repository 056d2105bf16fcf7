"""The nftables backend of `Firewall`: everything in netjail's own `table inet netjail`.

nft_plan.py says what the table holds and plans each change; this module runs it:

- Each change is one libnftables transaction (nft_binding: one buffer, one kernel batch: all or
  nothing), planned from a fresh listing of the table under netjail's own lock (other netjail
  processes: the watcher and a CLI command). When the kernel refuses it and the nf_tables
  generation id (nft_genid.py) moved since the listing, another writer changed something the
  plan relied on: it is planned again from a fresh listing. Nothing outside the table is read
  or written.
- A watcher pass that wants what was verified at the current generation id costs one netlink
  round trip (13 us here) and no listing at all.
- A `nft flush ruleset` or `nft delete table inet netjail` by anyone is a changed generation id
  like any other: the next sync finds the table gone and makes it again.
- cgroup selectors must name cgroups that exist (nft resolves the path when the element is
  added); like the iptables backend, a wanted cgroup that is gone is refused before anything is
  written, and selectors of cgroups deleted since (listed by their bare id) are dropped.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from netjail.backends.errors import BadInput, InsufficientPrivilege, OperationFailed, UnsupportedEnvironment
from netjail.backends.firewall import log_rule, nft_decode
from netjail.backends.firewall.base import Firewall, JailRules
from netjail.backends.firewall.matches import DIRECTIONS, allow, canonical_rules, selectors
from netjail.backends.firewall.nat import canonical_sources
from netjail.backends.firewall.nft_binding import TABLE, Nft, NftError
from netjail.backends.firewall.nft_elements import cgroup_ids, cgroup_paths
from netjail.backends.firewall.nft_genid import read_genid
from netjail.backends.firewall.nft_plan import (
    IP_KW,
    NAT_CHAIN,
    NAT_COMMENT,
    NAT_DECL,
    NFPROTO,
    RULE_TAG,
    Held,
    JailPart,
    cgroup_element,
    jail_part,
    parse_listing,
    plan,
    quoted,
    tag,
)
from netjail.backends.firewall.registry import NFTABLES, BackendInfo
from netjail.backends.jails.names import check_jail_name
from netjail.backends.model import JailCounters
from netjail.backends.system.cgroupfs import find_cgroup2
from netjail.backends.system.procio import netns_inode

SYSFS_CGROUP = "/sys/fs/cgroup"
LOCK_DIR = "/run"


def lock_path() -> str:
    """The lock of this network namespace's table: netjails in other namespaces write other
    tables and must not wait on each other (a machine-wide lock made parallel sessions wait over
    10 s under load)."""
    return f"{LOCK_DIR}/netjail-nftables.{netns_inode() or 0}.lock"


MAX_ATTEMPTS = 5


def cgroup_prefix() -> str | None:
    """Where cgroup2 is mounted relative to /sys/fs/cgroup ("" unified, "unified" hybrid), None
    when elsewhere: nft resolves cgroup paths below /sys/fs/cgroup only (docs/kernel-facts.md #12)."""
    found = find_cgroup2()
    if found is None:
        return None
    mount = os.path.normpath(found.path)
    if mount == SYSFS_CGROUP:
        return ""
    if mount.startswith(SYSFS_CGROUP + "/"):
        return mount[len(SYSFS_CGROUP) + 1 :]
    return None


@contextmanager
def nft_lock(timeout: float) -> Iterator[None]:
    """Serialises netjail's own writers of the table (the listing-to-commit window)."""
    path = lock_path()
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except PermissionError:
        raise InsufficientPrivilege(f"cannot open {path}: needs root") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InsufficientPrivilege(f"refusing the lock {path}: it is a symbolic link") from None
        raise OperationFailed(f"cannot open {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                    raise OperationFailed(f"cannot take {path}: {exc.strerror}") from None
                if time.monotonic() >= deadline:
                    raise OperationFailed(f"another netjail has held {path} for over {timeout:g} s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


class NftFirewall(Firewall):
    name = "nftables (table inet netjail)"

    def __init__(self, *, lock_timeout: float = 10.0) -> None:
        self._lock_timeout = lock_timeout
        self._mutex = threading.RLock()
        self._nft: Nft | None = None
        # jail -> rules the kernel was seen holding at generation `_verified_gen`
        self._verified: dict[str, JailRules] = {}
        self._verified_gen: int | None = None

    # ---- plumbing -----------------------------------------------------------------------------

    def _ctx(self) -> Nft:
        if self._nft is None:
            self._nft = Nft()
        return self._nft

    def _held(self) -> Held | None:
        """The table as the kernel holds it: its structure in one terse listing, the elements of
        its sets in a second, of its mark maps one by one, of its cgroup maps by id
        (nft_elements.py: libnftables would walk the cgroup tree once per element)."""
        ctx = self._ctx()
        items = ctx.list(f"table {TABLE}", terse=True)
        if items is None:
            return None
        held = parse_listing(items)
        with_elements = list(ctx.list(f"sets table {TABLE}") or ())
        cgroup_maps = []
        for name, have in held.sets.items():
            if have.decl.types == ("cgroupsv2",):
                cgroup_maps.append(name)
            elif have.decl.map is not None:
                with_elements += ctx.list(f"map {TABLE} {name}") or ()
        for name, have in parse_listing(with_elements).sets.items():
            if name in held.sets:
                held.sets[name] = have
        if cgroup_maps:
            self._fill_cgroup_maps(held, cgroup_maps)
        return held

    def _fill_cgroup_maps(self, held: Held, names: list[str]) -> None:
        found = find_cgroup2()
        prefix = cgroup_prefix()
        by_map = {name: cgroup_ids(name) for name in names}
        paths = {} if found is None else cgroup_paths(found.path, {i for ids in by_map.values() for i in ids})
        for name, ids in by_map.items():
            have = held.sets[name]
            for cg_id, chain in ids.items():
                rel = paths.get(cg_id)
                if rel is None or chain is None or prefix is None:
                    have.stale = True  # a cgroup deleted since (or not netjail's to name)
                    continue
                try:
                    key = cgroup_element("/" + rel, prefix)
                except BadInput:
                    have.stale = True
                    continue
                have.elements[key] = f"jump {chain}"

    def _commit(self, make: Callable[[Held | None], list[str]]) -> None:
        """List, plan, commit: again from a fresh listing when another writer got in between."""
        last: NftError | None = None
        with self._mutex, nft_lock(self._lock_timeout):
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    time.sleep(0.005 * attempt)
                gen = read_genid()
                try:
                    held = self._held()
                except NftError as exc:
                    self._denied(exc)
                    raise
                cmds = make(held)
                if not cmds:
                    self._verified_gen = gen
                    return
                # no check that the generation is still `gen` here: any writer of any table moves
                # it (a busy host's would starve netjail). A writer that changed what this plan
                # relies on makes the kernel refuse it (a rule, set or chain gone or already
                # there), and only then is the plan made again.
                try:
                    self._ctx().run("\n".join(cmds))
                except NftError as exc:
                    self._denied(exc)
                    last = exc
                    if read_genid() != gen:
                        continue  # planned on a table that changed under it
                    raise self._explain(exc) from None
                self._verified_gen = read_genid()
                return
        raise OperationFailed(
            f"gave up after {MAX_ATTEMPTS} attempts: table {TABLE} kept changing under netjail"
            + (f" ({last})" if last else "")
        )

    def _denied(self, exc: NftError) -> None:
        if exc.denied:
            raise InsufficientPrivilege(str(exc)) from None

    def _explain(self, exc: NftError) -> OperationFailed:
        if "cgroupv2 path fails" in str(exc):
            return OperationFailed(f"{exc} (a cgroup of the jail no longer exists)")
        return exc

    # ---- Firewall API -------------------------------------------------------------------------

    def sync_jail(self, rules: JailRules) -> None:
        self.sync_jails([rules])

    def sync_jails(self, rules: Iterable[JailRules]) -> None:
        wanted = {c.name: c for c in (canonical_rules(r) for r in rules)}
        if not wanted:
            return
        with self._mutex:
            gen = read_genid()
            if (
                gen is not None
                and gen == self._verified_gen
                and all(self._verified.get(n) == r for n, r in wanted.items())
            ):
                return
        prefix = cgroup_prefix()
        self._check_cgroups(wanted.values())
        log = log_rule.enabled()
        parts: dict[str, JailPart | None] = {}

        def make(held: Held | None) -> list[str]:
            for name, r in wanted.items():
                parts[name] = jail_part(r, prefix, log=log)
            return plan(held, parts)

        with self._mutex:
            if self._verified_gen != read_genid():
                self._verified = {}
            self._commit(make)
            self._verified.update(wanted)

    def remove_jail(self, name: str) -> None:
        name = check_jail_name(name)
        with self._mutex:
            self._verified.pop(name, None)
            self._commit(lambda held: plan(held, {name: None}) if held and name in held.jails() else [])

    def read_jail(self, name: str) -> JailRules | None:
        check_jail_name(name)
        with self._mutex:
            held = self._held()
        return None if held is None else nft_decode.read_jail(held, name, cgroup_prefix())

    def jail_names(self) -> set[str]:
        with self._mutex:
            held = self._held()
        return set() if held is None else held.jails()

    def counters(self) -> Mapping[str, JailCounters]:
        from netjail.backends.firewall.nft_counters import read_counters

        with self._mutex:
            return read_counters()

    def reset(self) -> None:
        with self._mutex, nft_lock(self._lock_timeout):
            self._verified, self._verified_gen = {}, None
            try:
                self._ctx().run(f"delete table {TABLE}")
            except NftError as exc:
                self._denied(exc)
                if not exc.missing:
                    raise

    # ---- masquerade (the table's nat chain) -----------------------------------------------------

    def sync_masquerade(self, jail: str, sources: Sequence[str], out_iface: str | None = None) -> None:
        check_jail_name(jail)
        by_family = canonical_sources(sources)
        texts = []
        for fam, srcs in by_family.items():
            for src in srcs:
                via = f" oifname {quoted(out_iface, 'interface')}" if out_iface else ""
                texts.append(f"meta nfproto {NFPROTO[fam]} {IP_KW[fam]} saddr {src}{via} masquerade")
        self._commit(lambda held: _nat_plan(held, jail, texts))

    def remove_masquerade(self, jail: str) -> None:
        check_jail_name(jail)
        self._commit(lambda held: _nat_plan(held, jail, []) if held else [])

    def masquerades(self) -> dict[str, tuple[str, ...]]:
        with self._mutex:
            held = self._held()
        return {} if held is None else nft_decode.masquerades(held)

    def reset_masquerade(self) -> None:
        def make(held: Held | None) -> list[str]:
            if held is None or NAT_CHAIN not in held.chains:
                return []
            if not held.jails():
                return [f"delete table {TABLE}"]
            return [f"flush chain {TABLE} {NAT_CHAIN}", f"delete chain {TABLE} {NAT_CHAIN}"]

        self._commit(make)

    def describe(self) -> BackendInfo:
        return NFTABLES

    @classmethod
    def warm_up(cls) -> None:
        Nft()

    # ---- cgroups ------------------------------------------------------------------------------

    def _check_cgroups(self, rules: Iterable[JailRules]) -> None:
        paths = {
            m.cgroup for r in rules for d in DIRECTIONS for m in (*selectors(r, d), *allow(r, d)) if m.cgroup
        }
        if not paths:
            return
        found = find_cgroup2()
        if found is None:
            raise UnsupportedEnvironment("cgroup2 is not mounted: cgroup matches need it")
        if cgroup_prefix() is None:
            raise UnsupportedEnvironment(
                f"cgroup2 is mounted at {found.path}, not under {SYSFS_CGROUP}, where nftables names cgroups"
            )
        root = Path(found.path)
        for path in sorted(paths):
            if not (root / path.lstrip("/")).is_dir():
                raise OperationFailed(f"cgroup {path} does not exist (create it before adding rules for it)")


def _nat_plan(held: Held | None, jail: str, texts: Sequence[str]) -> list[str]:
    """Commands giving `jail` exactly the masquerade rules `texts` in the nat chain."""
    own = f"{NAT_COMMENT}{jail}:"
    rules = held.chains.get(NAT_CHAIN, []) if held else []
    have = [r for r in rules if (r.comment or "").startswith(own)]
    want = {own + tag(t)[len(RULE_TAG) :]: t for t in texts}
    if sorted(r.comment or "" for r in have) == sorted(want):
        return []
    others = [r for r in rules if r not in have]
    if not want and not others:
        if held is None:
            return []
        if not held.jails():
            return [f"delete table {TABLE}"]
        return [f"flush chain {TABLE} {NAT_CHAIN}", f"delete chain {TABLE} {NAT_CHAIN}"]
    cmds: list[str] = []
    if held is None:
        cmds.append(f"add table {TABLE}")
    if held is None or NAT_CHAIN not in held.chains:
        cmds.append(NAT_DECL)
    cmds += [f"delete rule {TABLE} {NAT_CHAIN} handle {r.handle}" for r in have]
    cmds += [f'add rule {TABLE} {NAT_CHAIN} {t} comment "{c}"' for c, t in sorted(want.items())]
    return cmds
