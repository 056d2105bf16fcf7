"""Reconciliation: the registry and the kernel brought in line at the start of every command
(and every second by the watcher while jails exist).

Rules, in order:
1. Jails the kernel has (netjail cgroups, netjail chains) but the registry lacks (state file
   lost or corrupt) are re-adopted with whatever is in their cgroup: nothing jailed is ever
   silently released. Chains without a cgroup or members are orphans and are removed.
2. Interrupted steps are finished: `pending` members (a block that never completed) are rolled
   back, `releasing` members (an unblock that never completed) are released.
3. Members that exited are forgotten; processes found in a jail's cgroup (children born there)
   become members. A jail is removed once none of its members is alive and its cgroup is empty.
4. A missing cgroup is re-created and, since a `-m cgroup --path` rule binds to the cgroup that
   existed when it was loaded (DESIGN.md fact 3), a re-created cgroup reloads the jail's rules.
5. Every live jail's rules are synced (one commit per table): socket selectors follow the
   members' current sockets (new listeners get covered), missing rules are re-created.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from netjail.backends import identity, jail_cgroups
from netjail.backends.cgroupfs import read_cgroup
from netjail.backends.errors import NoSuchProcess
from netjail.backends.firewall.base import Firewall, JailRules
from netjail.backends.inventory import Inventory
from netjail.backends.jail_rules import allow_from_rules, desired_rules
from netjail.backends.model import Socket
from netjail.backends.state import PENDING, RELEASING, JailState, MemberState, Registry


class Reconciler:
    def __init__(self, mount: Path, firewall: Firewall, inventory: Inventory) -> None:
        self.mount = mount
        self.fw = firewall
        self.inventory = inventory

    def run(self, reg: Registry) -> list[str]:
        notes = self.adopt_kernel_jails(reg)
        for jail in list(reg.jails.values()):
            notes += self._finish_interrupted(reg, jail)
        in_kernel = self.fw.jail_names()
        sockets = self.sockets()
        desired: list[JailRules] = []
        for jail in list(reg.jails.values()):
            if not self._refresh_members(jail):
                self._remove(reg, jail)
                notes.append(f"jail {jail.name!r} removed: all its processes exited")
                continue
            notes += self._ensure_cgroup(jail)
            notes += self._bring_back_escapees(jail)
            if jail.name not in in_kernel:
                notes.append(f"jail {jail.name!r}: its rules were missing from the kernel; re-created")
            desired.append(desired_rules(jail, _of(jail, sockets)))
        if desired:
            self.fw.sync_jails(desired)
        return notes

    def sockets(self) -> dict[int, tuple[Socket, ...]]:
        snap = self.inventory.snapshot(all_processes=False)
        return {p.pid: p.sockets for p in snap.processes}

    # ---- 1. adoption ----------------------------------------------------------------------

    def adopt_kernel_jails(self, reg: Registry) -> list[str]:
        notes = []
        cgroups = set(jail_cgroups.existing(self.mount))
        for name in sorted((cgroups | self.fw.jail_names()) - set(reg.jails)):
            rel = jail_cgroups.jail_path(name)
            pids = jail_cgroups.procs(self.mount, rel)
            if name not in cgroups or not pids:
                self.fw.remove_jail(name)
                if name in cgroups:
                    jail_cgroups.remove(self.mount, rel)
                notes.append(f"removed orphaned jail {name!r} (no state, no processes)")
                continue
            rules = self.fw.read_jail(name)
            allow, loopback = allow_from_rules(rules) if rules else ([], False)
            members = []
            for pid in pids:
                if stat := identity.read_stat(pid):
                    members.append(MemberState(pid, stat.start_time, stat.name, "/", root=pid))
            reg.jails[name] = JailState(
                name,
                "cgroup",
                allow=allow,
                allow_loopback=loopback,
                cgroup=rel,
                cgroup_inode=jail_cgroups.inode(self.mount, rel) or 0,
                members=members,
                rebuilt=True,
            )
            notes.append(
                f"jail {name!r} found in the kernel but not in the state file: re-adopted "
                f"{len(members)} process(es); their original cgroups are unknown (root on release)"
            )
        return notes

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
                self.release(reg, jail, todo, remove_jail=whole)
                notes.append(f"jail {jail.name!r}: {verb} of PID(s) {', '.join(str(m.pid) for m in todo)}")
        return notes

    # ---- 3./4. members and cgroup ---------------------------------------------------------

    def _refresh_members(self, jail: JailState) -> bool:
        """Forget exited members, adopt processes born in the cgroup; False when nothing is left."""
        jail.members = [m for m in jail.members if alive(m)]
        known = {m.pid for m in jail.members}
        origin = jail.members[0].original_cgroup if jail.members else "/"
        for pid in jail_cgroups.procs(self.mount, jail.cgroup):
            if pid not in known and (stat := identity.read_stat(pid)):
                jail.members.append(MemberState(pid, stat.start_time, stat.name, origin, root=0))
        return bool(jail.members)

    def _ensure_cgroup(self, jail: JailState) -> list[str]:
        ino = jail_cgroups.inode(self.mount, jail.cgroup)
        if ino == jail.cgroup_inode and ino is not None:
            return []
        note = (
            f"jail {jail.name!r}: its cgroup was removed; re-created it"
            if ino is None
            else f"jail {jail.name!r}: its cgroup was re-created by someone; reloaded its rules"
        )
        jail.cgroup, jail.cgroup_inode = jail_cgroups.create(self.mount, jail.name)
        for m in jail.members:
            with contextlib.suppress(NoSuchProcess):
                jail_cgroups.move(self.mount, jail.cgroup, m.pid)
        # the old rule still names the dead cgroup: drop the chains so the sync loads them anew
        self.fw.remove_jail(jail.name)
        return [note]

    def _bring_back_escapees(self, jail: JailState) -> list[str]:
        """A member moved out of the jail's cgroup by someone else (a service manager, a user)
        is moved back: nothing jailed is silently released."""
        inside = set(jail_cgroups.procs(self.mount, jail.cgroup))
        notes = []
        for m in jail.members:
            if m.pid in inside:
                continue
            try:
                now = read_cgroup(m.pid)
                jail_cgroups.move(self.mount, jail.cgroup, m.pid)
            except NoSuchProcess:
                continue
            notes.append(f"jail {jail.name!r}: PID {m.pid} had been moved out to {now or '?'}; moved back")
        return notes

    # ---- release --------------------------------------------------------------------------

    def release(self, reg: Registry, jail: JailState, members: list[MemberState], remove_jail: bool) -> bool:
        """Move members (and children born in the jail from them) back to their original
        cgroups, then drop their rules; remove the jail when asked or when it is left empty.
        Returns True when the jail was removed."""
        origins = {m.pid: m.original_cgroup for m in members}
        leaving = set(origins)
        default = members[0].original_cgroup if members else "/"
        in_cgroup = jail_cgroups.procs(self.mount, jail.cgroup) if jail.cgroup else []
        for pid in in_cgroup:
            if remove_jail or pid in leaving or leaving & set(identity.ancestors(pid)):
                with contextlib.suppress(NoSuchProcess):
                    jail_cgroups.move(self.mount, origins.get(pid, default), pid)
        jail.members = [m for m in jail.members if m.pid not in leaving]
        remaining = jail_cgroups.procs(self.mount, jail.cgroup) if jail.cgroup else []
        if remove_jail or (not jail.members and not remaining):
            self._remove(reg, jail, origins)
            return True
        self.fw.sync_jail(desired_rules(jail, _of(jail, self.sockets())))
        return False

    def _remove(self, reg: Registry, jail: JailState, origins: dict[int, str] | None = None) -> None:
        self.fw.remove_jail(jail.name)
        if jail.cgroup:
            jail_cgroups.remove(self.mount, jail.cgroup, origins)
        reg.jails.pop(jail.name, None)


def alive(m: MemberState) -> bool:
    stat = identity.read_stat(m.pid)
    return stat is not None and stat.start_time == m.start_time


def _of(jail: JailState, sockets: Mapping[int, Iterable[Socket]]) -> dict[int, Iterable[Socket]]:
    return {m.pid: sockets.get(m.pid, ()) for m in jail.members}
