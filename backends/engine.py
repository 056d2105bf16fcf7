"""The one engine API the CLI and the TUI share. Plain-data requests in, plain-data results out.

Every mutating call takes the state lock, reconciles the registry with the kernel first (see
`reconcile.py`), then acts. A block is journalled: members are recorded as `pending` before any
kernel change and become `active` only when every step is done, so a netjail killed half-way is
rolled back to nothing by the next command; on any error the call undoes its own steps.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from netjail.backends.errors import (
    BadInput,
    InsufficientPrivilege,
    NetjailError,
    NoSuchProcess,
    OperationFailed,
    UnsupportedEnvironment,
)
from netjail.backends.firewall.base import Firewall, JailRules
from netjail.backends.jails import accept_queue, block_report, mark_check, policy, watcher
from netjail.backends.jails import cgroups as jail_cgroups
from netjail.backends.jails import marks as jail_marks
from netjail.backends.jails.labelled import labelled_snapshot
from netjail.backends.jails.names import check_jail_name, derive_jail_name
from netjail.backends.jails.rules import desired_rules
from netjail.backends.jails.state import (
    ACTIVE,
    LAUNCHER,
    PENDING,
    RELEASING,
    JailState,
    MemberState,
    Registry,
    Store,
)
from netjail.backends.jails.strategies import BY_NAME, STRATEGIES, strategy
from netjail.backends.jails.strategies.cgroup import cgroup_state
from netjail.backends.jails.views import alive, jail_counters, jail_infos
from netjail.backends.model import Member
from netjail.backends.model_block import BlockResult
from netjail.backends.system import identity, systemd_units
from netjail.backends.system.cgroupfs import find_cgroup2
from netjail.backends.system.inventory import Inventory
from netjail.backends.system.procio import netns_inode

if TYPE_CHECKING:  # each command imports only what it runs (`list` no launch code ...)
    import subprocess

    from netjail.backends.attempts.store import AttemptRow
    from netjail.backends.engine_launch import Launches, Stdio
    from netjail.backends.jails.reconcile import Reconciler

    # the other commands' requests and results: each is imported where it is made (a block
    # creates only its own types, model_block.py)
    from netjail.backends.model import (
        BlockRequest,
        Check,
        HostInfo,
        JailCounters,
        JailInfo,
        LaunchRequest,
        LaunchResult,
        OwnerBlockRequest,
        Process,
        ResetResult,
        SharedSocket,
        Snapshot,
        Socket,
        StrategyInfo,
        UnblockRequest,
        UnblockResult,
        UnfilterableHeld,
    )

FAULT_ENV = "NETJAIL_FAULT_AT"


def _fault_point(step: str) -> None:
    """Test hook: die like `kill -9` at a named step of a block (NETJAIL_FAULT_AT=step)."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class Engine:
    def __init__(
        self,
        state_dir: Path | None = None,
        firewall: Firewall | None = None,
        inventory: Inventory | None = None,
        spawn_watcher: bool = True,
    ) -> None:
        self.store = Store(state_dir)
        self._firewall = firewall
        self._choose_backend = firewall is None  # a firewall given is the one used, always
        self.inventory = inventory or Inventory()
        self.spawn_watcher = spawn_watcher
        self._launches: Launches | None = None
        self._last_reconcile: Reconciler | None = None  # its process scan is reused by block

    # ---- environment -----------------------------------------------------------------------

    @property
    def launches(self) -> Launches:
        if self._launches is None:
            from netjail.backends.engine_launch import Launches

            self._launches = Launches(self)
        return self._launches

    @property
    def firewall(self) -> Firewall:
        if self._firewall is None:
            try:
                reg = self.store.load()
            except NetjailError:  # not root (the TUI's header): commands that act load it first
                reg = Registry()
            self._use_backend(reg)
        assert self._firewall is not None
        return self._firewall

    def _use_backend(self, reg: Registry) -> None:
        """The firewall backend for `reg` (registry.choose: its jails' own while they live),
        created or, in a long-lived engine (TUI, watcher), replaced when another command's
        jails now decide; `reg` records it, so the jails a save writes name their backend."""
        if not self._choose_backend:
            assert self._firewall is not None
            reg.backend = self._firewall.describe().name
            return
        from netjail.backends.firewall import registry

        info, _why = registry.choose(reg.backend, reg.jails)  # doctor says why
        if self._firewall is None or self._firewall.describe() is not info:
            self._firewall = registry.create(info)  # loads its rule library
        reg.backend = info.name

    def coverage_notes(self) -> list[str]:
        """The line block and run print when netjail filters only one address family here."""
        from netjail.backends.firewall.families import coverage_note

        note = coverage_note(self.firewall.coverage())
        return [note] if note else []

    @staticmethod
    def warm_up() -> None:
        """Load the firewall backend's rule library, before a UI owns the terminal."""
        from netjail.backends.firewall import registry

        reg = Store().load()
        registry.backend_class(registry.choose(reg.backend, reg.jails)[0]).warm_up()

    @staticmethod
    def privileged() -> bool:
        return os.geteuid() == 0

    def require_root(self, what: str) -> None:
        self._require_root(what)

    def _require_root(self, what: str) -> None:
        if not self.privileged():
            raise InsufficientPrivilege(f"{what} needs root (CAP_NET_ADMIN and write access to cgroup2)")

    @staticmethod
    def _mount() -> Path:
        mount = find_cgroup2()
        if mount is None:
            raise UnsupportedEnvironment("cgroup2 is not mounted: the cgroup strategy needs it")
        return Path(mount.path)

    def host_info(self) -> HostInfo:
        import platform

        from netjail.backends.model import HostInfo

        mount = find_cgroup2()
        try:
            fw_name = self.firewall.name
        except NetjailError as exc:
            fw_name = f"unavailable ({exc})"
        return HostInfo(
            hostname=socket.gethostname(),
            kernel=platform.release(),
            privileged=self.privileged(),
            firewall=fw_name,
            cgroup2=mount.path if mount else "",
        )

    def strategies(self) -> tuple[StrategyInfo, ...]:
        return STRATEGIES

    def doctor(self) -> tuple[Check, ...]:
        from netjail.backends.doctor.checks import run_checks

        return run_checks()

    # ---- reading ---------------------------------------------------------------------------

    def _reconciler(self) -> Reconciler:
        from netjail.backends.jails.reconcile import Reconciler

        mount = find_cgroup2()  # optional: only cgroup jails need it
        return Reconciler(Path(mount.path) if mount else None, self.firewall, self.inventory, self.store.dir)

    def snapshot(self, *, all_processes: bool = True) -> Snapshot:
        """Processes and sockets, labelled with their jail (see labelled.py)."""
        return labelled_snapshot(self.store, self.inventory, all_processes=all_processes)

    def check_target(self, pid: int, start_time: int | None = None, force: bool = False) -> Process:
        stat = identity.current(pid, start_time)
        if not force:
            identity.refuse_protected(stat)
        proc = self.inventory.lookup(pid, sockets=False)  # the block reads them when it needs them
        if proc is None:
            raise BadInput(f"no such process: {pid}")
        own = netns_inode()
        if proc.netns is not None and own is not None and proc.netns != own:
            raise BadInput(
                f"PID {pid} lives in another network namespace (net:[{proc.netns}]): run netjail "
                f"inside it, e.g. `nsenter -t {pid} -n netjail block {pid}`"
            )
        return proc

    def reconcile(self) -> list[str]:
        """Bring registry and kernel in line; returns drift notes. Used by every command."""
        self._require_root("reading netjail's state")
        with self.store.locked():
            reg, notes = self._load()
            self.store.save(reg)
            return notes

    # ---- for the launch code (engine_launch.Launches): its part of the engine, public ----

    def load_reconciled(self) -> tuple[Registry, list[str]]:
        """The registry, every jail reconciled (call with the store locked), and the drift notes."""
        return self._load()

    def reconciler(self) -> Reconciler:
        return self._reconciler()

    def _load(
        self, scope: Callable[[Registry], Collection[str] | None] | None = None
    ) -> tuple[Registry, list[str]]:
        """The registry, reconciled: every jail, or the jails `scope` picks from the state as
        loaded (block and unblock: the one they act on; reconcile.py says why that is safe);
        and the drift notes, which the action's result carries."""
        reg = self.store.load()
        self._use_backend(reg)
        reconciler = self._last_reconcile = self._reconciler()
        notes = list(reg.problems) + reconciler.run(reg, scope(reg) if scope else None)
        if reg.jails and self.spawn_watcher:
            watcher.ensure_running(self.store.dir)  # a watcher that died is replaced here
        return reg, notes

    def jails(
        self, *, reconcile: bool = True, counters: Sequence[JailCounters] | None = None
    ) -> tuple[JailInfo, ...]:
        """Every jail; `counters` from a `counters()` call just made saves a second table read.
        No drift notes: a caller that shows them reconciles first (`list`: reconcile(), then
        jails(reconcile=False)); the TUI's refresh leaves them to the watcher's log."""
        self._require_root("reading netjail's jails")
        if reconcile:
            with self.store.locked():
                reg, _ = self._load()
                self.store.save(reg)
        else:
            reg = self.store.load()
            self._use_backend(reg)
        found = {c.jail: c for c in counters} if counters is not None else self.firewall.counters()
        return jail_infos(reg, found)

    def counters(self) -> tuple[JailCounters, ...]:
        self._require_root("reading netjail's counters")
        reg = self.store.load()
        self._use_backend(reg)
        return jail_counters(reg, self.firewall.counters())

    def attempts(self, *, jail: str | None = None, limit: int = 200) -> tuple[AttemptRow, ...]:
        """What jails' processes tried to reach, most attempted first (docs/attempts.md)."""
        from netjail.backends.attempts.store import AttemptLog

        self._require_root("reading the attempts log")
        log = AttemptLog(self.store.dir, create=False)
        try:
            return tuple(log.attempts(jail=jail, limit=limit))
        finally:
            log.close()

    # ---- blocking --------------------------------------------------------------------------

    def block(self, req: BlockRequest) -> BlockResult:
        kind = BY_NAME.get(req.strategy)
        if kind is None or kind.blocks != "pid":
            raise BadInput(f"strategy {req.strategy!r} cannot act on a running process")
        allow = policy.parse_allow_list(req.allow)
        if req.jail is not None:
            check_jail_name(req.jail)
        target = self.check_target(req.pid, req.start_time, req.force)
        self._require_root("blocking")
        mount = self._mount()
        with self.store.locked():
            reg, notes = self._load(lambda reg: {req.jail or derive_jail_name(target.name, f"-{target.pid}")})
            target = self.check_target(req.pid, req.start_time, req.force)  # after the lock wait
            name = req.jail or _fresh_name(reg, target)
            pids = [target.pid] + (identity.descendants(target.pid) if req.tree else [])
            members = self._new_members(reg, name, pids, target, req.force, notes)
            jail = reg.jails.get(name)
            new_jail = jail is None
            allow_text = [str(a) for a in allow]
            if jail is None:
                jail = JailState(
                    name,
                    kind.name,
                    allow=allow_text,
                    allow_loopback=req.allow_loopback,
                    created_at=time.time(),
                    detail=kind.block_state(name),
                )
                reg.jails[name] = jail
            elif jail.strategy != kind.name:
                raise BadInput(f"jail {name!r} is a {jail.strategy} jail: block into another --jail")
            elif (allow_text and allow_text != jail.allow) or (
                req.allow_loopback and not jail.allow_loopback
            ):
                raise BadInput(
                    f"jail {name!r} exists with allow-list {jail.allow or ['none']}: "
                    "block into a new --jail to use another allow-list"
                )
            jail_marks.assign(jail, [j.mark for j in reg.jails.values() if j is not jail])
            forced_before, left_alone = jail.mark_force, list(jail.mark_foreign)
            if req.force and not jail.mark_force:
                # from now on the jail re-marks those too: the watcher looks at them again
                jail.mark_force, jail.mark_foreign = True, []
            marked_before = jail_marks.marked(jail)
            had_members = bool(jail.members)
            jail.members.extend(members)
            self.store.save(reg)
            _fault_point("pending")
            seen: dict[int, jail_marks.Seen] = {}
            try:
                rules, killed = self._apply_block(
                    mount, jail, members, req.kill_connections, seen, had_members, notes
                )
                if req.tree:
                    rules = self._catch_late_children(
                        reg, mount, jail, members, target, req.force, rules, seen, notes
                    )
            except BaseException:
                jail.mark_force, jail.mark_foreign = forced_before, left_alone
                self._rollback(mount, reg, jail, members, new_jail)
                raise
            for m in members:
                m.status = ACTIVE
            self.store.save(reg)
            _fault_point("done")
            notes += _io_uring_notes(members, {} if jail.marks_unavailable else seen)
            notes += self.coverage_notes()
        if self.spawn_watcher:
            watcher.ensure_running(self.store.dir)
        shared, unfilterable = self._block_report(jail, members, seen, marked_before)
        socket_rules = [
            m for m in rules.out_selectors + rules.in_selectors if m.cgroup is None and m.mark is None
        ]
        return BlockResult(
            jail=name,
            strategy=kind.name,
            members=tuple(Member(m.pid, m.start_time, True, m.name) for m in members),
            socket_rules=len(socket_rules),
            killed_connections=killed,
            marked_sockets=len(jail.marks),
            set_entries=len(rules.set_entries),
            unfilterable=unfilterable,
            shared=shared,
            unit=systemd_units.unit_of(target.cgroup),
            cgroup=members[0].cgroup if members else "",
            notes=tuple(notes),
        )

    def _block_report(
        self,
        jail: JailState,
        members: list[MemberState],
        seen: Mapping[int, jail_marks.Seen],
        marked_before: set[int],
    ) -> tuple[tuple[SharedSocket, ...], tuple[UnfilterableHeld, ...]]:
        """Sockets the block shares with processes outside and sockets it leaves open. From
        what the marking passes saw when every member was marked (no socket table read unless
        one is shared); from the inventory otherwise (marks refused: seen is incomplete)."""
        if not jail.marks_unavailable and all(m.pid in seen for m in members if identity.read_stat(m.pid)):
            held: dict[int, list[int]] = {}
            for m in members:
                for inode in seen[m.pid].inet if m.pid in seen else ():
                    held.setdefault(inode, []).append(m.pid)

            def describe() -> dict[int, Socket]:
                return self._sockets_by_inode(members)

            packets = {pid: s.packet for pid, s in seen.items()}
            return (
                block_report.shared(jail, members, held, describe),
                block_report.unfilterable_seen(members, packets),
            )
        procs = self._member_procs(members)
        held = block_report.held_by_members(members, procs)
        for inode in jail_marks.marked(jail) - marked_before:
            held.setdefault(inode, [])
        by_inode = {s.inode: s for p in procs.values() for s in p.sockets}
        return (
            block_report.shared(jail, members, held, lambda: by_inode),
            block_report.unfilterable(members, procs),
        )

    def _catch_late_children(
        self,
        reg: Registry,
        mount: Path,
        jail: JailState,
        members: list[MemberState],
        target: Process,
        force: bool,
        rules: JailRules,
        seen: dict[int, jail_marks.Seen],
        notes: list[str],
    ) -> JailRules:
        """--tree: children forked between the descendant list and the move were born outside
        the jail (a fork storm left 28 out). List again until a pass finds none outside: from
        the move on, new children are born inside. Bounded: a tree that forks faster than it can
        be moved is reported, not chased forever."""
        for _ in range(8):
            known = {m.pid for m in jail.members}
            late = [
                pid
                for pid in identity.descendants(target.pid)
                if pid not in known and not jail_cgroups.in_jail(_cgroup_of(pid), cgroup_state(jail).cgroups)
            ]
            extra = self._new_members(reg, jail.name, late, target, force, notes) if late else []
            if not extra:
                return rules
            jail.members.extend(extra)
            members.extend(extra)
            self.store.save(reg)
            rules, _ = self._apply_block(mount, jail, extra, False, seen, True, notes)
        notes.append(f"jail {jail.name!r}: its tree kept forking outside the jail; run block --tree again")
        return rules

    def _new_members(
        self, reg: Registry, name: str, pids: list[int], target: Process, force: bool, notes: list[str]
    ) -> list[MemberState]:
        # by (PID, start): a jail this block did not reconcile may list a member that exited
        # since, whose PID is now another process's
        jailed = {(m.pid, m.start_time): j.name for j in reg.jails.values() for m in j.members}
        protected = set(identity.ancestors())
        own = netns_inode()
        members = []
        for pid in pids:
            stat = identity.read_stat(pid)
            if stat is None:
                continue  # a child that exited meanwhile
            if pid != target.pid and netns_inode(f"/proc/{pid}") not in (own, None):
                # Jailed all the same: sockets it made here before it unshared (any user may,
                # with a user namespace) still send through our OUTPUT, and left out it kept
                # one unmarked (attack review: 96 of 96 datagrams out). Its own namespace's
                # traffic is that namespace's rules' business.
                notes.append(
                    f"PID {pid} ({stat.name}) runs in another network namespace: jailed for its "
                    "sockets here; what it sends in its own namespace is not filtered"
                )
            if not force:
                identity.refuse_protected(stat, protected)
            start = target.start_time if pid == target.pid else stat.start_time
            if (pid, start) in jailed:
                if pid == target.pid:
                    raise BadInput(f"PID {pid} is already jailed in {jailed[pid, start]!r}")
                continue
            origin = target.cgroup if pid == target.pid else _cgroup_of(pid)
            # a unit's processes stay in its cgroup: their jail is made inside it (systemd_units)
            sub = jail_cgroups.member_path(name, target.pid, target.start_time, origin)
            if jail_cgroups.unit_base(sub) is not None:
                _check_nestable(self._mount(), origin, pid)
            members.append(
                MemberState(pid, start, stat.name, origin or "/", root=target.pid, status=PENDING, cgroup=sub)
            )
        return members

    def _apply_block(
        self,
        mount: Path,
        jail: JailState,
        members: list[MemberState],
        kill: bool,
        seen: dict[int, jail_marks.Seen],
        had_members: bool,
        notes: list[str],
    ) -> tuple[JailRules, int]:
        cg = cgroup_state(jail)
        cg.cgroup_inode = jail_cgroups.create(mount, cg.cgroup)
        for sub in {m.cgroup for m in members}:
            cg.cgroups[sub] = jail_cgroups.create(mount, sub)
            notes += jail_marks.mark_at_creation(mount, jail, sub)
        _fault_point("cgroup")
        # The jail's rules first (a few per jail: the cgroup, the mark, the allow-list), then the
        # move, then one pass over the members' fds marking every socket they hold (those
        # created from the move on are marked at creation, sock_create_mark). Marked sockets
        # need no rule of their own, so their addresses are not needed: the socket tables (a
        # whole namespace's dump, 20-40 ms at 4,000 sockets) are read only for what marks do
        # not cover, for kills, and for a jail's earlier members (their unmarked sockets keep
        # their selectors). One pass, not one before the move and one after: each costs ~20 us
        # per socket (eight syscalls), 40 ms at 2,000.
        before = self._member_sockets(jail, fresh=False) if kill or had_members else {}
        _remember_sockets(jail, before)
        first = self._cgroup_rules(jail, before)
        self.firewall.sync_jail(first)
        _fault_point("rules")
        for m in list(members):
            try:
                # the PID must still be the same process, during the write too (a pidfd)
                went = jail_cgroups.move_process(mount, m.cgroup, m.pid, m.start_time)
                if went != m.cgroup:  # move() falls back to an ancestor that takes it
                    jail_cgroups.move_process(mount, m.original_cgroup, m.pid, m.start_time)
                    raise OperationFailed(
                        f"the kernel refused PID {m.pid} in {m.cgroup} (only {went} took it): not jailed"
                    )
            except NoSuchProcess:
                if m.pid == m.root:
                    raise
                jail.members.remove(m)  # a --tree child that exited meanwhile
        _fault_point("move")
        # the mark rule is loaded: each socket is cut from its next packet on
        had = jail_marks.marked(jail)
        self._mark(jail, members, notes, seen)
        accept_queue.refresh(jail, not had.issuperset(jail_marks.marked(jail)))
        sockets = before
        if jail.marks_unavailable or jail.mark_foreign or kill:
            # address selectors (or kills) for them need their addresses: a fresh scan
            sockets = self._member_sockets(jail)
            _remember_sockets(jail, sockets)  # every socket they held since the move
        rules = self._cgroup_rules(jail, sockets)
        if rules != first:
            self.firewall.sync_jail(rules)
        _fault_point("rescan")
        if kill:
            from netjail.backends.jails.kill_connections import kill_established

            return rules, kill_established([s for m in members for s in sockets.get(m.pid, ())])
        return rules, 0

    def _mark(
        self,
        jail: JailState,
        members: list[MemberState],
        notes: list[str],
        seen: dict[int, jail_marks.Seen] | None = None,
    ) -> None:
        """Mark what members hold; another program's mark (without --force) refuses the block,
        and the caller rolls every step back. Checked in the marking pass itself: a pass of its
        own before acting cost 40 ms at 2,000 sockets."""
        left_alone, known = len(jail.mark_foreign), len(jail.marks)
        said = jail_marks.mark_members(jail, members, seen=seen)
        if len(jail.mark_foreign) > left_alone:
            found = mark_check.foreign_marked(members, jail.mark_mask, set(jail.mark_foreign[left_alone:]))
            raise mark_check.refusal(found, jail.mark_mask, self._sockets_by_inode(members))
        notes += said + mark_check.forced_notes(jail.name, jail.marks[known:], jail.mark_mask)

    @staticmethod
    def _cgroup_rules(jail: JailState, sockets: Mapping[int, tuple[Socket, ...]]) -> JailRules:
        rules = desired_rules(jail, sockets)
        assert rules is not None  # a cgroup jail always has rules
        return rules

    def _sockets_by_inode(self, members: list[MemberState]) -> dict[int, Socket]:
        reconciler = self._last_reconcile or self._reconciler()
        procs = reconciler.processes(prefetch=[m.pid for m in members])
        return {s.inode: s for m in members if m.pid in procs for s in procs[m.pid].sockets}

    def _member_sockets(self, jail: JailState, fresh: bool = True) -> dict[int, tuple[Socket, ...]]:
        procs = self._member_procs(jail.members, fresh)
        return {m.pid: procs[m.pid].sockets for m in jail.members if m.pid in procs}

    def _member_procs(self, members: Sequence[MemberState], fresh: bool = False) -> Mapping[int, Process]:
        reconciler = self._last_reconcile or self._reconciler()
        return reconciler.processes(fresh=fresh, prefetch=[m.pid for m in members])

    def _rollback(
        self, mount: Path, reg: Registry, jail: JailState, members: list[MemberState], new_jail: bool
    ) -> None:
        from netjail.backends.jails.reconcile import Reconciler

        # what the release says is lost with the block's failure, which the caller raises
        Reconciler(mount, self.firewall, self.inventory, self.store.dir).release(
            reg, jail, members, remove_jail=new_jail
        )
        self.store.save(reg)

    # ---- launching, users and groups (engine_launch.py) -------------------------------------

    def launch(
        self,
        req: LaunchRequest,
        *,
        stdin: Stdio = None,
        stdout: Stdio = None,
        stderr: Stdio = None,
        detached: bool = False,
    ) -> tuple[LaunchResult, subprocess.Popen[bytes]]:
        """Start a command already jailed, in its own session, and return at once (the TUI:
        `detached`, output to the jail's log, LaunchResult.log)."""
        return self.launches.launch(req, stdin=stdin, stdout=stdout, stderr=stderr, detached=detached)

    def run(self, req: LaunchRequest) -> LaunchResult:
        """Run a command jailed in the foreground; its exit code comes back in the result."""
        return self.launches.run(req)

    def preview_owner(
        self, user: str | None = None, group: str | None = None, force: bool = False
    ) -> tuple[Process, ...]:
        return self.launches.preview_owner(user, group, force)

    def block_owner(self, req: OwnerBlockRequest, force: bool = False) -> BlockResult:
        return self.launches.block_owner(req, force)

    def relaunch(
        self, pid: int, start_time: int | None, req: LaunchRequest, force: bool = False
    ) -> LaunchResult:
        return self.launches.relaunch(pid, start_time, req, force)

    def launch_log_path(self, jail: str) -> Path:
        """Where a background launch or relaunch into `jail` writes its output (the UI names it
        before anything starts; LaunchResult.log names it after)."""
        return self.launches.log_path(jail)

    # ---- releasing -------------------------------------------------------------------------

    def unblock(self, req: UnblockRequest) -> UnblockResult:
        if sum((req.pid is not None, req.jail is not None, req.all)) != 1:
            raise BadInput("unblock needs exactly one of: a PID, --jail NAME, --all")
        self._require_root("unblocking")
        with self.store.locked():
            reg, notes = self._load(None if req.all else partial(_unblock_scope, req))
            if req.all:
                targets = [(j, list(j.members), True) for j in reg.jails.values()]
            elif req.jail is not None:
                if req.jail not in reg.jails:
                    raise BadInput(f"no such jail: {req.jail!r}")
                jail = reg.jails[req.jail]
                targets = [(jail, list(jail.members), True)]
            else:
                targets = [self._members_of_pid(reg, req.pid or 0)]
            for _jail, members, _whole in targets:
                for m in members:
                    m.status = RELEASING
            self.store.save(reg)
            reconciler = self._reconciler()
            removed = []
            released: list[Member] = []
            for jail, members, whole in targets:
                released += [
                    Member(m.pid, m.start_time, identity.read_stat(m.pid) is not None, m.name)
                    for m in members
                ]
                notes += reconciler.release(reg, jail, members, remove_jail=whole)
                if jail.name not in reg.jails:
                    removed.append(jail.name)
            self.store.save(reg)
        from netjail.backends.model import UnblockResult

        return UnblockResult(tuple(released), tuple(removed), notes=tuple(notes))

    def _members_of_pid(self, reg: Registry, pid: int) -> tuple[JailState, list[MemberState], bool]:
        for jail in reg.jails.values():
            hit = [m for m in jail.members if m.pid == pid]
            if hit and not strategy(jail.strategy).info.member_release:
                raise BadInput(
                    f"PID {pid} is held by the {jail.strategy} jail {jail.name!r}, which "
                    f"is released as a whole: netjail unblock --jail {jail.name}"
                )
            if hit and hit[0].root not in (pid, 0):
                # its sockets from inside the jail carry the root's sub-cgroup: only the whole
                # sub-cgroup can leave, or they would stay blocked after the "unblock"
                raise BadInput(
                    f"PID {pid} is jailed with PID {hit[0].root}'s tree (or was born in "
                    f"the jail): unblock {hit[0].root}, or --jail {jail.name}"
                )
            if hit:
                # members that came in with this PID's --tree, or were born in the jail, go with it
                members = hit + [m for m in jail.members if m.root == pid and m.pid != pid]
                return jail, members, False
        raise BadInput(f"PID {pid} is not jailed")

    def reset(self) -> ResetResult:
        """Remove every netjail rule, chain, cgroup, namespace, group it created and the state
        file; processes keep running, unjailed (a seccomp filter stays with its processes)."""
        from netjail.backends.jails.reconcile import Reconciler
        from netjail.backends.launch import netns, pasta

        self._require_root("reset")
        mount = find_cgroup2()
        with self.store.locked():
            reg = self.store.load()
            self._use_backend(reg)
            root = Path(mount.path) if mount else None
            reconciler = Reconciler(root, self.firewall, self.inventory, self.store.dir)
            reconciler.adopt_kernel_jails(reg)
            names = tuple(reg.jails)
            released: list[Member] = []
            failures: list[str] = []

            def attempt(what: str, step: Callable[[], object]) -> None:
                # reset is the way out of a mess: one failing step must not stop the others
                try:
                    step()
                except NetjailError as exc:
                    failures.append(f"{what}: {exc}")

            for jail in list(reg.jails.values()):
                released += [
                    Member(m.pid, m.start_time, alive(m), m.name)
                    for m in jail.members
                    if m.status != LAUNCHER
                ]
                attempt(f"jail {jail.name}", partial(reconciler.release, reg, jail, list(jail.members), True))
                reg.jails.pop(jail.name, None)
            attempt("filter rules", self.firewall.reset)
            attempt("nat rules", self.firewall.reset_masquerade)
            for leftover in netns.list_netjail_netns():
                attempt(f"netns {leftover}", partial(netns.remove_netns, leftover, firewall=self.firewall))
            if mount:
                for name in jail_cgroups.existing(Path(mount.path)):
                    # a pasta link left behind is ended, never moved out of its cgroup alive
                    attempt(f"link of {name}", partial(pasta.stop, name, Path(mount.path), 0, 0, False))
                    cgroup = jail_cgroups.jail_path(name)
                    attempt(f"cgroup of {name}", partial(jail_cgroups.remove, Path(mount.path), cgroup))
                # state lost or not: every unit is left as it was (processes back in its cgroup)
                for inside in jail_cgroups.unit_dirs(Path(mount.path)) if systemd_units.managed() else ():
                    attempt(f"cgroup {inside}", partial(jail_cgroups.remove, Path(mount.path), inside))
            watcher.stop(self.store.dir)
            self.store.remove()
            if failures:
                raise OperationFailed("reset left something behind: " + "; ".join(failures))
        from netjail.backends.model import ResetResult

        return ResetResult(names, tuple(released))


def _fresh_name(reg: Registry, target: Process) -> str:
    """The default jail name, never one a jail has already: comm and PID are the process's
    to arrange (a PID comes round again, a child born in a jail keeps it after its first
    member exited), and joining that jail would give a block that allows nothing its
    allow-list (attack review: 97 of 97 datagrams out)."""
    name = derive_jail_name(target.name, f"-{target.pid}")
    n = 2
    while name in reg.jails:
        name = derive_jail_name(target.name, f"-{target.pid}-{n}")
        n += 1
    return name


def _unblock_scope(req: UnblockRequest, reg: Registry) -> set[str] | None:
    """The jails an unblock acts on: named, or holding the PID (as a member, or in its cgroups:
    a child born in the jail since the last pass); None, every jail, when that is unclear."""
    if req.jail is not None:
        return {req.jail}
    hit = {j.name for j in reg.jails.values() if any(m.pid == req.pid for m in j.members)}
    if hit or req.pid is None:
        return hit
    where = _cgroup_of(req.pid)
    jails = reg.jails.values()
    inside = {j.name for j in jails if strategy(j.strategy).holds_cgroup(j, where)}
    return inside or None


def _remember_sockets(jail: JailState, sockets: Mapping[int, tuple[Socket, ...]]) -> None:
    known = set(jail.pre_inodes)
    jail.pre_inodes += [s.inode for socks in sockets.values() for s in socks if s.inode not in known]


def _cgroup_of(pid: int) -> str:
    from netjail.backends.system.cgroupfs import read_cgroup

    try:
        return read_cgroup(pid)
    except NetjailError:
        return "/"


def _check_nestable(mount: Path, origin: str, pid: int) -> None:
    """A process's own (non-root) domain cgroup can always take a child for it: it cannot enable
    controllers while it holds the process (EBUSY, docs/kernel-facts.md #14). In a threaded
    subtree ("domain threaded", "threaded") a new child is "domain invalid" and refuses the
    process (EOPNOTSUPP): netjail would have to take it out of its unit, and refuses."""
    kind = systemd_units.cgroup_type(mount, origin)
    if kind in ("domain threaded", "threaded"):
        unit = systemd_units.unit_name(origin)
        raise UnsupportedEnvironment(
            f"PID {pid} belongs to {unit}, whose cgroup {origin} is {kind} (a threaded subtree "
            "takes no child cgroup for a process): netjail would have to take it out of its unit; "
            f"use the unit's own IPAddressDeny= (systemctl set-property {unit} IPAddressDeny=any) "
            "or start the program jailed with `netjail run`"
        )


def _io_uring_notes(members: list[MemberState], seen: Mapping[int, jail_marks.Seen]) -> list[str]:
    """Sockets registered with an io_uring instance and then closed are in no fd table: no
    rule or mark can reach them (docs/security.md, known limits). Say so for each such member
    (the marking pass saw its fds; read here only where marks were refused)."""
    notes = []
    for m in members:
        if _IO_URING in seen[m.pid].anon if m.pid in seen else _holds_io_uring(m.pid):
            notes.append(
                f"PID {m.pid} holds an io_uring instance: sockets registered with it cannot "
                "be seen or cut; relaunch it (R / netjail run --netns or --seccomp) to be sure"
            )
    return notes


_IO_URING = "anon_inode:[io_uring]"


def _holds_io_uring(pid: int) -> bool:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == _IO_URING:
                return True
        except OSError:
            continue
    return False
