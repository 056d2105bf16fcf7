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

import contextlib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from netjail.backends.errors import NetjailError, NoSuchProcess
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
    StrategyName,
)
from netjail.backends.launch import groups, netns, pasta
from netjail.backends.model import Process, Socket
from netjail.backends.system import identity, systemd_units
from netjail.backends.system.cgroupfs import read_cgroup
from netjail.backends.system.inventory import Inventory
from netjail.backends.system.scoped_processes import ScopedProcesses


class Reconciler:
    def __init__(self, mount: Path | None, firewall: Firewall, inventory: Inventory) -> None:
        self.mount = mount
        self.fw = firewall
        self.inventory = inventory
        self._procs: ScopedProcesses | None = None
        self._retired: list[str] = []  # sub-cgroups left empty, removed once their rules are
        self._held: dict[int, Socket] = {}  # every socket members held in this pass, by inode
        self._raw_held: set[int] = set()  # every socket inode a cgroup member holds (any kind)
        self._raw_by_pid: dict[int, list[int]] = {}
        self._found: dict[str, dict[int, str]] = {}  # jail -> pid -> cgroup, read in this pass

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
            stopped = self._stopped_units(jail)  # before the refresh retires their cgroups
            if not self._refresh_members(jail, procs):
                notes += self._remove(reg, jail)
                notes.append(f"jail {jail.name!r} removed: all its processes exited{stopped}")
                continue
            if jail.strategy == "cgroup":
                repaired = self._ensure_cgroup(jail)
                notes += repaired
                # where each process is was read by the refresh just now, unless the repair moved some
                notes += self._bring_back_escapees(jail, None if repaired else self._found.get(jail.name))
                self._read_held_inodes(jail)
                notes += self._mark(jail)
            notes += _check_pasta(jail)
            kept.append(jail)
        # Sockets by address only where marks do not cover them all: a cgroup jail whose every
        # socket carries its mark needs no rule per socket, so no socket table is read for it
        # (sock_diag dumps the whole namespace: 25 ms per pass at 4,000 sockets).
        self.processes(prefetch=[m.pid for j in kept if _needs_addresses(j) for m in j.members])
        desired: list[JailRules] = []
        for jail in kept:
            sockets = self._held_sockets(jail, procs) if _needs_addresses(jail) else {}
            live = {s.inode for socks in sockets.values() for s in socks}
            if jail.strategy == "cgroup":
                live.update(i for m in jail.members for i in self._raw_by_pid.get(m.pid, ()))
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
            jail_marks.forget_other(self._raw_held)
        self._held = {}
        self._found = {}
        if self.mount:
            for sub in self._retired:  # their selectors are gone now: the cgroups may go too
                jail_cgroups.remove(self.mount, sub)
        self._retired.clear()
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

    def _read_held_inodes(self, jail: JailState) -> None:
        """Every socket inode a cgroup jail's members hold, listed by sock_diag or not
        (unbound, raw, ICMP ...): what jail_marks marks."""
        for m in jail.members:
            if m.status == LAUNCHER:
                continue
            inodes = socket_cgroups.held_inodes(m.pid)
            if inodes is None:
                continue  # exited
            self._raw_held.update(inodes)
            self._raw_by_pid[m.pid] = inodes

    def _mark(self, jail: JailState) -> list[str]:
        """Mark every INET socket members hold: those the cgroup rule cannot see (created
        outside the jail, or not listed by sock_diag: unbound, raw, ICMP ...) and those opened
        inside, which INPUT tells apart by their mark once no early demux hands it their cgroup
        (listeners, unconnected UDP; docs/kernel-facts.md #2). Until this period's pass, the
        INPUT cgroup lane covers established ones opened inside."""
        jail_marks.prune(jail, self._raw_held)  # read just now by _read_held_inodes
        checked = jail_marks.checked(jail)
        # a member holding nothing new costs no pidfd: its fds were read by _read_held_inodes
        todo = [m for m in jail.members if not checked.issuperset(self._raw_by_pid.get(m.pid, ()))]
        return jail_marks.mark_members(jail, todo)

    def _unseen(self, jail: JailState, sockets: Mapping[int, Iterable[Socket]]) -> set[int]:
        """Sockets members hold that were created outside the jail's cgroups (issue 8 #5)."""
        if jail.strategy != "cgroup" or not self.mount:
            return set()
        held = [s for socks in sockets.values() for s in socks]
        if not held:
            return set()
        inside = socket_cgroups.subtree_inodes(self.mount, jail.cgroups)
        return socket_cgroups.SHARED.unseen(held, inside)

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
        namespaces = set(netns.list_netjail_netns())
        chains = self.fw.jail_names() if in_kernel is None else in_kernel
        for name in sorted((cgroups | namespaces | chains) - set(reg.jails)):
            rules = self.fw.read_jail(name)
            allow, loopback = allow_from_rules(rules) if rules else ([], False)
            jail = self._adopt(name, cgroups, namespaces, rules)
            if jail is None:
                self.fw.remove_jail(name)
                if name in cgroups and self.mount:
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
        # member cgroups inside units are not below the jail's directory: its rules name them
        in_units = {
            m.cgroup
            for m in (rules.out_selectors if rules else ())
            if m.cgroup
            and jail_cgroups.unit_base(m.cgroup)
            and self.mount
            and jail_cgroups.inode(self.mount, m.cgroup) is not None
        }
        if (name in cgroups or in_units) and self.mount and name not in namespaces:
            rel = jail_cgroups.jail_path(name)
            members = []
            for pid, sub in jail_cgroups.jail_procs(self.mount, rel, in_units).items():
                if sub == pasta.cgroup_path(name):
                    continue  # the link of a netns jail whose namespace is gone: an orphan
                if stat := identity.read_stat(pid):
                    root = jail_cgroups.root_of(sub)
                    origin = jail_cgroups.unit_base(sub) or "/"
                    members.append(
                        MemberState(pid, stat.start_time, stat.name, origin, root=root, cgroup=sub)
                    )
            if not members:
                return None
            subs = {
                sub: jail_cgroups.inode(self.mount, sub) or 0
                for sub in [*jail_cgroups.subs(self.mount, rel), *sorted(in_units)]
            }
            return JailState(
                name,
                StrategyName.CGROUP,
                cgroup=rel,
                members=members,
                cgroups=subs,
                cgroup_inode=jail_cgroups.inode(self.mount, rel) or 0,
            )
        if name in namespaces:
            found = netns.read_netns(name)
            jail = JailState(
                name,
                StrategyName.NETNS,
                netns=found.name if found else "",
                veth=(found.host_iface or "") if found else "",
                keep=True,
                members=_members(netns.netns_pids(name)),
            )
            jail.link = "veth" if jail.veth else ""
            linked = jail_cgroups.procs(self.mount, pasta.cgroup_path(name)) if self.mount else []
            if name in cgroups or linked:
                jail.link, jail.pasta_cgroup = "pasta", pasta.cgroup_path(name)
                if len(linked) == 1 and (stat := identity.read_stat(linked[0])):
                    jail.pasta_pid, jail.pasta_start = linked[0], stat.start_time
            return jail
        owners = [
            m
            for m in (rules.out_selectors if rules else ())
            if m.uid_owner is not None or m.gid_owner is not None
        ]
        if not owners:
            return None
        uid, gid = owners[0].uid_owner, owners[0].gid_owner
        created = groups.group_gid(groups.group_name(name)) == gid if gid is not None else False
        return JailState(
            name, StrategyName.GID if created else StrategyName.OWNER, uid=uid, gid=gid, group_created=created
        )

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

    def _refresh_members(self, jail: JailState, procs: Mapping[int, Process]) -> bool:
        """Bring the member list up to date; False when the jail has nothing left to hold."""
        alive = [m for m in jail.members if is_alive(m)]
        known = {m.pid for m in alive}
        if jail.strategy == "cgroup":
            return self._refresh_cgroup_members(jail, alive)
        if jail.strategy == "owner":
            found = [
                p.pid
                for p in procs.values()
                if (jail.uid is not None and p.uid == jail.uid) or (jail.uid is None and p.gid == jail.gid)
            ]
            alive = [m for m in alive if m.pid in found]
            known = {m.pid for m in alive}
        elif jail.strategy == "gid":
            found = [p.pid for p in procs.values() if p.gid == jail.gid]
        elif jail.strategy == "netns":
            found = netns.netns_pids(jail.name)
        else:  # seccomp: the filter is inherited by every descendant (not the launcher's)
            found = _descendants({m.pid for m in alive if m.status != LAUNCHER}, procs)
        origin = alive[0].original_cgroup if alive else "/"
        for pid in found:
            if pid not in known and (stat := identity.read_stat(pid)):
                alive.append(MemberState(pid, stat.start_time, stat.name, origin, root=0))
                known.add(pid)
        jail.members = alive
        return bool(alive) or jail.keep or jail.strategy == "owner"

    def _refresh_cgroup_members(self, jail: JailState, alive: list[MemberState]) -> bool:
        """Children born in a sub-cgroup join as members of that sub-cgroup's root; a
        sub-cgroup with neither members nor processes is retired."""
        found = jail_cgroups.jail_procs(self.mount, jail.cgroup, jail.cgroups) if self.mount else {}
        self._found[jail.name] = found
        known = {m.pid for m in alive}
        for pid, sub in found.items():
            if pid in known or not (stat := identity.read_stat(pid)):
                continue
            root = jail_cgroups.root_of(sub)
            origin = next((m.original_cgroup for m in alive if m.root == root), "/")
            alive.append(MemberState(pid, stat.start_time, stat.name, origin, root=root, cgroup=sub))
        live = {m.cgroup for m in alive} | set(found.values())
        for sub in [sub for sub in jail.cgroups if sub not in live]:
            del jail.cgroups[sub]
            self._retired.append(sub)
        jail.members = alive
        return bool(alive)

    def _stopped_units(self, jail: JailState) -> str:
        """ " (systemd stopped X.service)" when the jail's members were in units whose cgroups
        systemd removed (a stop or a restart: a restarted unit's cgroup is a new one)."""
        if not self.mount or jail.strategy != "cgroup":
            return ""
        gone = sorted(
            {
                systemd_units.unit_name(base) or base
                for sub in jail.cgroups
                if (base := jail_cgroups.unit_base(sub)) and jail_cgroups.inode(self.mount, sub) is None
            }
        )
        return f" (systemd stopped {', '.join(gone)}, and them with it)" if gone else ""

    def _ensure_cgroup(self, jail: JailState) -> list[str]:
        assert self.mount is not None
        notes = []
        if jail_cgroups.inode(self.mount, jail.cgroup) is None:
            jail.cgroup_inode = jail_cgroups.create(self.mount, jail.cgroup)
        for sub, ino in list(jail.cgroups.items()):
            now = jail_cgroups.inode(self.mount, sub)
            if now == ino and now is not None:
                continue
            if now is None and jail_cgroups.unit_base(sub) is not None:
                notes += self._unit_gone(jail, sub)
                continue
            notes.append(
                f"jail {jail.name!r}: cgroup {sub} was removed; re-created it"
                if now is None
                else f"jail {jail.name!r}: cgroup {sub} was re-created by someone; reloaded its rules"
            )
            jail.cgroups[sub] = jail_cgroups.create(self.mount, sub)
            notes += jail_marks.mark_at_creation(self.mount, jail, sub)
            for m in jail.members:
                if m.cgroup == sub:
                    with contextlib.suppress(NoSuchProcess):
                        jail_cgroups.move_process(self.mount, sub, m.pid, m.start_time)
        if notes:
            # the old rules still name the dead cgroups: drop the chains so the sync loads them anew
            self.fw.remove_jail(jail.name)
        return notes

    def _unit_gone(self, jail: JailState, sub: str) -> list[str]:
        """A member cgroup inside a unit vanished while members of it live: systemd removed
        the unit's cgroup (stop, restart), so they were moved out first. Nothing is re-created
        inside the unit: each such member is jailed again where it is now (its processes
        exiting with the unit is the usual case, and they are forgotten before this)."""
        assert self.mount is not None
        del jail.cgroups[sub]
        notes = [f"jail {jail.name!r}: cgroup {sub} went with its unit; not re-created there"]
        for m in [m for m in jail.members if m.cgroup == sub]:
            try:
                now = read_cgroup(m.pid)
                stat = identity.read_stat(m.pid)
                if stat is None or stat.state == "Z" or jail_cgroups.inode(self.mount, now) is None:
                    raise NoSuchProcess(f"PID {m.pid} exited")
                m.cgroup = f"{jail_cgroups.place(now)}/{jail.name}/{sub.rsplit('/', 1)[-1]}"
                m.original_cgroup = now
                jail.cgroups[m.cgroup] = jail_cgroups.create(self.mount, m.cgroup)
                jail_marks.mark_at_creation(self.mount, jail, m.cgroup)
                jail_cgroups.move_process(self.mount, m.cgroup, m.pid, m.start_time)
            except NoSuchProcess:
                jail.members.remove(m)
                continue
            notes.append(f"jail {jail.name!r}: PID {m.pid} had left it for {now}; jailed again in {m.cgroup}")
        return notes  # the dead cgroup's selector is dropped by the sync, the new one added

    def _bring_back_escapees(self, jail: JailState, inside: Mapping[int, str] | None = None) -> list[str]:
        """A member moved out of the jail's cgroup by someone else (a service manager, a user)
        is moved back: nothing jailed is silently released. `inside`: pid -> cgroup of what
        the jail's cgroups hold, when just read."""
        assert self.mount is not None
        if inside is None:
            inside = jail_cgroups.jail_procs(self.mount, jail.cgroup, jail.cgroups)
        notes = []
        for m in jail.members:
            if not m.cgroup or inside.get(m.pid) == m.cgroup or m.status == LAUNCHER:
                continue
            try:
                now = read_cgroup(m.pid)
                # seen a scan ago: the pidfd move re-checks (pid, start time) around the write
                jail_cgroups.move_process(self.mount, m.cgroup, m.pid, m.start_time)
            except NoSuchProcess:
                continue
            notes.append(f"jail {jail.name!r}: PID {m.pid} had been moved out to {now or '?'}; moved back")
        return notes

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
        subs: set[str] = set()
        if jail.strategy == "cgroup" and self.mount:
            # a member leaves with its whole sub-cgroup (its --tree and the children born there)
            subs = set(jail.cgroups) if remove_jail else {m.cgroup for m in members if m.cgroup}
            # Out of the cgroups first, then marks: in them, every socket made meanwhile gets
            # the jail's mark (sock_create_mark); the restore pass after the move takes it off
            # those too. A socket left with netjail's mark would be caught by the next jail
            # given the same value.
            holders = leaving | {pid for sub in subs for pid in jail_cgroups.procs(self.mount, sub)}
            for sub in subs:
                home = jail_cgroups.unit_base(sub) or "/"  # never out of the unit
                default = next((m.original_cgroup for m in members if m.cgroup == sub), home)
                for pid in jail_cgroups.procs(self.mount, sub):
                    leaving.add(pid)
                    origin = origins.get(pid, default)
                    try:
                        # listed in the sub-cgroup a moment ago: moved only if still in it
                        went = jail_cgroups.move_process(self.mount, origin, pid, inside=sub)
                    except NoSuchProcess:
                        continue
                    if went != origin:
                        notes.append(
                            f"PID {pid}: its cgroup {origin} no longer exists; released to {went}"
                            " (the nearest existing ancestor)"
                        )
            jail_marks.restore(jail, sorted(holders))
        staying = [m for m in jail.members if m.pid not in leaving]
        remaining = (
            jail_cgroups.jail_procs(self.mount, jail.cgroup, set(jail.cgroups) - subs)
            if jail.strategy == "cgroup" and self.mount
            else {}
        )
        if remove_jail or (not staying and not remaining and not jail.keep):
            return notes + self._remove(reg, jail, origins)  # jail.members still says who was inside
        jail.members = staying
        for sub in subs:
            jail.cgroups.pop(sub, None)
        procs = self.processes(fresh=True)
        sockets = self._held_sockets(jail, procs)
        rules = desired_rules(jail, sockets, self._unseen(jail, sockets))
        if rules is not None:
            self.fw.sync_jail(rules)
        if self.mount:
            for sub in subs:  # after the sync: a rule naming a removed cgroup poisons the table
                jail_cgroups.remove(self.mount, sub, origins)
        return notes

    def _remove(self, reg: Registry, jail: JailState, origins: dict[int, str] | None = None) -> list[str]:
        """Undo every kernel object of the jail. Rules go first: a `-m cgroup` rule naming a
        removed cgroup would make every later commit of the table fail."""
        notes = []
        self.fw.remove_jail(jail.name)
        if jail.strategy == "cgroup" and jail.cgroup and self.mount:
            jail_cgroups.remove(self.mount, jail.cgroup, origins)
            for sub in jail.cgroups:  # those made inside units (gone already if the unit is)
                if not sub.startswith(jail.cgroup + "/"):
                    jail_cgroups.remove(self.mount, sub, origins)
        elif jail.strategy == "gid" and jail.group_created:
            groups.remove_group(jail.name)
        elif jail.strategy == "netns":
            left = [m.pid for m in jail.members if is_alive(m) and m.status != LAUNCHER]
            if jail.link == "pasta":  # after its rules: they name pasta's cgroup
                pasta.stop(jail.name, self.mount, jail.pasta_pid, jail.pasta_start)
            netns.remove_netns(jail.name, nat=jail.link != "pasta")
            if left:
                notes.append(
                    f"jail {jail.name!r}: PID(s) {', '.join(map(str, left))} stay in the "
                    "(now unnamed) namespace, with loopback only, until they exit"
                )
            others = [j for j in reg.jails.values() if j.strategy == "netns" and j.name != jail.name]
            if jail.forwarding_before is not None and not others:
                with contextlib.suppress(NetjailError):
                    netns.set_forwarding(netns.Forwarding(*jail.forwarding_before))
        elif jail.strategy == "seccomp":
            left = [m.pid for m in jail.members if is_alive(m) and m.status != LAUNCHER]
            if left:
                notes.append(
                    f"jail {jail.name!r}: a seccomp filter cannot be lifted; PID(s) "
                    f"{', '.join(map(str, left))} keep it until they exit"
                )
        reg.jails.pop(jail.name, None)
        return notes


def _check_pasta(jail: JailState) -> list[str]:
    """A pasta link that died leaves the jail without network (its rules stay: harmless)."""
    if jail.link != "pasta" or not jail.pasta_pid or pasta.alive(jail.pasta_pid, jail.pasta_start):
        return []
    pid, jail.pasta_pid, jail.pasta_start = jail.pasta_pid, 0, 0
    return [f"jail {jail.name!r}: its link (pasta, PID {pid}) exited: the jail has no network any more"]


def is_alive(m: MemberState) -> bool:
    stat = identity.read_stat(m.pid)
    return stat is not None and stat.start_time == m.start_time


def _members(pids: Iterable[int]) -> list[MemberState]:
    members = []
    for pid in pids:
        if stat := identity.read_stat(pid):
            members.append(MemberState(pid, stat.start_time, stat.name, "/", root=pid))
    return members


def _descendants(roots: set[int], procs: Mapping[int, Process]) -> list[int]:
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, p in procs.items() if p.ppid in frontier and pid not in found}
        found |= frontier
    return sorted(found)


def _needs_addresses(jail: JailState) -> bool:
    """Whether some socket of the jail is matched by its addresses (sets), not by its mark:
    marks refused here, sockets with another program's mark, or a strategy without marks."""
    return jail.strategy != "cgroup" or not jail.mark or jail.marks_unavailable or bool(jail.mark_foreign)


def _sockets_of(jail: JailState, procs: Mapping[int, Process]) -> dict[int, Iterable[Socket]]:
    return {m.pid: procs[m.pid].sockets for m in jail.members if m.pid in procs and m.status != LAUNCHER}
