"""Reconciliation: the registry and the kernel brought in line at the start of every command
(and every second by the watcher while jails exist).

Rules, in order:
1. Jails the kernel has (netjail cgroups, chains, network namespaces) but the registry lacks
   (state file lost or corrupt) are re-adopted: nothing jailed is ever silently released.
   Chains with neither members nor an owner match are orphans and are removed.
2. Interrupted steps are finished: `pending` members (a block that never completed) are rolled
   back, `releasing` members (an unblock that never completed) are released.
3. Members are refreshed per strategy. cgroup: exited members are forgotten, processes found in
   the cgroup (children born there) join. owner: every current process of the user/group.
   netns: every process in the namespace. gid: every process running under the group.
   seccomp: the launched processes and their descendants.
   When a jail is removed: cgroup, gid, netns and seccomp jails once no member is alive (and
   the cgroup is empty; never a `--keep` launch jail); owner jails only by unblock/reset, since
   they are about the user's processes to come as much as the current ones.
4. cgroup jails: a missing cgroup is re-created (never one inside a systemd unit: that one went
   with its unit, whose processes exited with it; see systemd_units) and, since a
   `-m cgroup --path` rule binds to the cgroup that existed when it was loaded
   (docs/kernel-facts.md #3), a re-created cgroup reloads the jail's rules; a member moved out
   by someone else is moved back.
5. Every live jail's rules are synced (one commit per table): socket selectors follow the
   members' current sockets (new listeners get covered), missing rules are re-created.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from netjail.backends.firewall.base import Firewall, JailRules
from netjail.backends.jails import cgroups as jail_cgroups
from netjail.backends.jails import marks as jail_marks
from netjail.backends.jails import socket_cgroups
from netjail.backends.jails.rules import allow_from_rules, desired_rules
from netjail.backends.jails.state import (
    LAUNCHER,
    PENDING,
    RELEASING,
    JailState,
    MemberState,
    Registry,
)
from netjail.backends.jails.strategies import BY_NAME, strategy
from netjail.backends.jails.strategies.base import Found
from netjail.backends.launch.netns_names import list_netjail_netns
from netjail.backends.model import Process, Socket
from netjail.backends.system import identity
from netjail.backends.system.inventory import Inventory
from netjail.backends.system.scoped_processes import ScopedProcesses


class Reconciler:
    def __init__(
        self, mount: Path | None, firewall: Firewall, inventory: Inventory, state_dir: Path | None = None
    ) -> None:
        self.mount = mount
        self.state_dir = state_dir  # where the attempts log is: a removed jail's rows go with it
        self.fw = firewall
        self.inventory = inventory
        self._procs: ScopedProcesses | None = None
        self.retired: list[str] = []  # sub-cgroups left empty, removed once their rules are
        self._held: dict[int, Socket] = {}  # every socket members held in this pass, by inode
        self.raw_held: set[int] = set()  # every socket inode a cgroup member holds (any kind)
        self.raw_by_pid: dict[int, list[int]] = {}
        self.found: dict[str, dict[int, str]] = {}  # jail -> pid -> cgroup, read in this pass

    def run(self, reg: Registry, scope: Collection[str] | None = None) -> list[str]:
        """Bring every jail (or only those named in `scope`) in line with the kernel.

        `block` and `unblock` pass the jails they act on: the others are the watcher's, which
        reconciles all of them every period (and every other command does too). Jails the state
        file lost, and interrupted blocks and unblocks, are taken care of in every pass: they
        are what a scoped command could trip over."""
        in_kernel = self.fw.jail_names()
        notes = self.adopt_kernel_jails(reg, in_kernel)
        for jail in list(reg.jails.values()):
            notes += self._finish_interrupted(reg, jail)
        todo = [j for j in reg.jails.values() if scope is None or j.name in scope]
        procs = self.processes(fresh=True)
        kept: list[JailState] = []
        for jail in todo:
            kind = strategy(jail.strategy)
            stopped = kind.stopped_units(self, jail)  # before the refresh retires their cgroups
            if not kind.refresh(self, jail, procs):
                notes += self._remove(reg, jail)
                notes.append(f"jail {jail.name!r} removed: all its processes exited{stopped}")
                continue
            notes += kind.upkeep(self, jail)
            kept.append(jail)
        # Sockets by address only where marks do not cover them all (Strategy.needs_addresses)
        self.processes(
            prefetch=[m.pid for j in kept if strategy(j.strategy).needs_addresses(j) for m in j.members]
        )
        desired: list[JailRules] = []
        for jail in kept:
            sockets = self._held_sockets(jail, procs) if strategy(jail.strategy).needs_addresses(jail) else {}
            live = {s.inode for socks in sockets.values() for s in socks}
            live.update(i for m in jail.members for i in self.raw_by_pid.get(m.pid, ()))  # cgroup jails
            jail.pre_inodes = [i for i in jail.pre_inodes if i in live]  # closed ones are done
            unseen = self._unseen(jail, sockets)
            rules = desired_rules(jail, sockets, unseen)
            if rules is None:
                continue
            if jail.name not in in_kernel:
                notes.append(f"jail {jail.name!r}: its rules were missing from the kernel; re-created")
            desired.append(rules)
        if desired:
            self.fw.sync_jails(desired)
        if scope is None:  # caches of every jail's sockets: only a whole pass saw them all
            socket_cgroups.SHARED.retain(self._held)  # by inode
            jail_marks.forget_other(self.raw_held)
        self._held = {}
        self.found = {}
        if self.mount:
            for sub in self.retired:  # their selectors are gone now: the cgroups may go too
                jail_cgroups.remove(self.mount, sub)
        self.retired.clear()
        return notes

    # ---- sockets a jail's own selector cannot see ----------------------------------------

    def _held_sockets(self, jail: JailState, procs: Mapping[int, Process]) -> dict[int, Iterable[Socket]]:
        """The sockets members hold, as the inventory lists them. `procs` reads each member
        fresh in this pass (its fd links and its namespace's socket tables:
        Inventory.lookup_many), so a socket handed to a member since the last pass is among
        them (see socket_cgroups)."""
        held = _sockets_of(jail, procs)
        self._held.update((s.inode, s) for socks in held.values() for s in socks)
        return held

    def _unseen(self, jail: JailState, sockets: Mapping[int, Iterable[Socket]]) -> set[int]:
        """Sockets members hold that were created outside the jail's cgroups (issue 8 #5)."""
        held = [s for socks in sockets.values() for s in socks]
        return strategy(jail.strategy).unseen(self, jail, held) if held else set()

    def processes(self, fresh: bool = False, prefetch: Iterable[int] = ()) -> Mapping[int, Process]:
        """Processes by PID, read only as asked (scoped_processes.py): a reconciliation of
        cgroup and netns jails reads their members, not the whole system."""
        if fresh or self._procs is None:
            self._procs = ScopedProcesses(self.inventory)
        self._procs.prefetch(prefetch)
        return self._procs

    def sockets(self) -> dict[int, tuple[Socket, ...]]:
        return {pid: p.sockets for pid, p in self.processes(fresh=True).items() if p.sockets}

    # ---- 1. adoption ----------------------------------------------------------------------

    def adopt_kernel_jails(self, reg: Registry, in_kernel: set[str] | None = None) -> list[str]:
        notes = []
        cgroups = set(jail_cgroups.existing(self.mount)) if self.mount else set()
        namespaces = set(list_netjail_netns())
        chains = self.fw.jail_names() if in_kernel is None else in_kernel
        for name in sorted((cgroups | namespaces | chains) - set(reg.jails)):
            rules = self.fw.read_jail(name)
            allow, loopback = allow_from_rules(rules) if rules else ([], False)
            jail = self._adopt(name, cgroups, namespaces, rules)
            if jail is None:
                self.fw.remove_jail(name)
                if name in cgroups and self.mount:
                    from netjail.backends.launch import pasta  # launch code: only for this orphan

                    pasta.stop(name, self.mount, 0, 0, remove=False)  # ended, never moved out alive
                    jail_cgroups.remove(self.mount, jail_cgroups.jail_path(name))
                notes.append(f"removed orphaned jail {name!r} (no state, no processes)")
                continue
            jail.allow, jail.allow_loopback, jail.rebuilt = allow, loopback, True
            # its sockets still carry its mark: keep the rule that catches them (originals are
            # unknown now; the next period records them as 0); a pasta link's mark is incoming only
            selectors = (rules.out_selectors + rules.in_selectors) if rules else ()
            marks = [m for m in selectors if m.mark and m.mark_mask]
            if marks:
                jail.mark, jail.mark_mask = marks[0].mark or 0, marks[0].mark_mask or 0
            # which sockets predate the jail is unknown now: keep covering every one it has
            procs = self.processes()
            jail.pre_inodes = [s.inode for m in jail.members if m.pid in procs for s in procs[m.pid].sockets]
            reg.jails[name] = jail
            notes.append(
                f"jail {name!r} ({jail.strategy}) found in the kernel but not in the state "
                f"file: re-adopted with {len(jail.members)} process(es)"
            )
        return notes

    def _adopt(
        self, name: str, cgroups: set[str], namespaces: set[str], rules: JailRules | None
    ) -> JailState | None:
        found = Found(cgroups, namespaces, rules)
        for kind in BY_NAME.values():  # their claims exclude each other (Strategy.adopt)
            if (jail := kind.adopt(self, name, found)) is not None:
                return jail
            if found.orphan:
                return None
        return None

    # ---- 2. interrupted steps -------------------------------------------------------------

    def _finish_interrupted(self, reg: Registry, jail: JailState) -> list[str]:
        notes = []
        for status, verb in (
            (PENDING, "rolled back an interrupted block"),
            (RELEASING, "finished an interrupted unblock"),
        ):
            todo = [m for m in jail.members if m.status == status]
            if todo and jail.name in reg.jails:
                whole = len(todo) == len(jail.members)
                notes += self.release(reg, jail, todo, remove_jail=whole)
                notes.append(f"jail {jail.name!r}: {verb} of PID(s) {', '.join(str(m.pid) for m in todo)}")
        return notes

    # ---- 3./4. members and cgroup ---------------------------------------------------------

    # ---- release --------------------------------------------------------------------------

    def release(
        self, reg: Registry, jail: JailState, members: list[MemberState], remove_jail: bool
    ) -> list[str]:
        """Release members: cgroup members (and children born in the jail from them) go back to
        their original cgroups and their rules are dropped. Other strategies release only as a
        whole jail. The jail goes when asked or when left empty. Returns notes."""
        notes: list[str] = []
        leaving = {m.pid for m in members}
        origins = {m.pid: m.original_cgroup for m in members}
        kind = strategy(jail.strategy)
        subs = kind.release_members(self, jail, members, remove_jail, leaving, origins, notes)
        staying = [m for m in jail.members if m.pid not in leaving]
        remaining = kind.holds_others(self, jail, subs)
        if remove_jail or (not staying and not remaining and not jail.keep):
            return notes + self._remove(reg, jail, origins)  # jail.members still says who was inside
        jail.members = staying
        kind.forget_released(jail, subs)
        procs = self.processes(fresh=True)
        sockets = self._held_sockets(jail, procs)
        rules = desired_rules(jail, sockets, self._unseen(jail, sockets))
        if rules is not None:
            self.fw.sync_jail(rules)
        kind.drop_released(self, subs, origins)  # after the sync: rules may name them
        return notes

    def _remove(self, reg: Registry, jail: JailState, origins: dict[int, str] | None = None) -> list[str]:
        """Undo every kernel object of the jail. Rules go first: a `-m cgroup` rule naming a
        removed cgroup would make every later commit of the table fail."""
        self.fw.remove_jail(jail.name)
        notes = strategy(jail.strategy).remove(self, reg, jail, origins)
        reg.jails.pop(jail.name, None)
        if self.state_dir is not None:
            from netjail.backends.attempts.store import forget_jail

            notes += forget_jail(self.state_dir, jail.name)
        return notes


def is_alive(m: MemberState) -> bool:
    stat = identity.read_stat(m.pid)
    return stat is not None and stat.start_time == m.start_time


def members_of(pids: Iterable[int]) -> list[MemberState]:
    members = []
    for pid in pids:
        if stat := identity.read_stat(pid):
            members.append(MemberState(pid, stat.start_time, stat.name, "/", root=pid))
    return members


def _sockets_of(jail: JailState, procs: Mapping[int, Process]) -> dict[int, Iterable[Socket]]:
    return {m.pid: procs[m.pid].sockets for m in jail.members if m.pid in procs and m.status != LAUNCHER}
