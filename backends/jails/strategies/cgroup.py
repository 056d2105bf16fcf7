"""cgroup: a running process moved into a netjail cgroup; `-m cgroup` drops what it sends, the
jail's socket mark covers both directions of the sockets it holds (jails/marks.py), and rules
for each socket it already had cover those the mark cannot."""

from __future__ import annotations

from netjail.backends.jails.state import (
    LAUNCHER,
    JailState,
    MemberState,
    Registry,
    StrategyName,
    StrategyState,
    detail_of,
)
from netjail.backends.jails.strategies.base import Found, Strategy
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netjail.backends.firewall.base import Match
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import Process, Socket


class CgroupState(StrategyState):
    """cgroup: the jail's directory relative to the cgroup2 mount (jails/cgroups.py), its inode,
    and one sub-cgroup per blocked root -> its inode: a re-created cgroup has a new inode, and
    the `-m cgroup` rule loaded for the old one no longer matches: its rules must be reloaded."""

    __slots__ = FIELDS = ("cgroup", "cgroup_inode", "cgroups")

    def __init__(
        self, cgroup: str = "", cgroup_inode: int = 0, cgroups: dict[str, int] | None = None
    ) -> None:
        self.cgroup = cgroup
        self.cgroup_inode = cgroup_inode
        self.cgroups: dict[str, int] = {} if cgroups is None else cgroups


def cgroup_state(jail: JailState) -> CgroupState:
    return detail_of(jail, CgroupState)


class Cgroup(Strategy):
    name = StrategyName.CGROUP
    state_type = CgroupState
    info = StrategyInfo(
        name="cgroup",
        description="move the process into a netjail cgroup; iptables -m cgroup drops what it sends, "
        "and rules for each socket it already had cover both directions",
        live_process=True,
        launch=False,
        member_release=True,
        allow_list=True,
        counters=True,
    )

    def selectors(self, jail: JailState) -> tuple[tuple[Match, ...], tuple[Match, ...]] | None:
        from netjail.backends.firewall.base import Match
        from netjail.backends.jails.rules import FAMILIES

        cg = cgroup_state(jail)
        owners = tuple(Match(fam, cgroup=sub) for sub in sorted(cg.cgroups) for fam in FAMILIES)
        in_sel: tuple[Match, ...] = ()
        if jail.mark:
            marks = tuple(Match(fam, mark=jail.mark, mark_mask=jail.mark_mask) for fam in FAMILIES)
            owners += marks
            in_sel += marks
        # established TCP and connected UDP sockets opened inside: early demux gives INPUT
        # their socket, and its cgroup (the watcher marks them too, within a period)
        in_sel += tuple(Match(fam, cgroup=sub) for sub in sorted(cg.cgroups) for fam in FAMILIES)
        return owners, in_sel

    def needs_addresses(self, jail: JailState) -> bool:
        """Marks refused here, or sockets with another program's mark: a jail whose every
        socket carries its mark needs no rule per socket, so no socket table is read for it
        (sock_diag dumps the whole namespace: 25 ms per pass at 4,000 sockets)."""
        return not jail.mark or jail.marks_unavailable or bool(jail.mark_foreign)

    blocks = "pid"

    def block_state(self, name: str) -> CgroupState:
        from netjail.backends.jails import cgroups as jail_cgroups

        return CgroupState(jail_cgroups.jail_path(name))

    def holds_cgroup(self, jail: JailState, cgroup: str) -> bool:
        from netjail.backends.jails import cgroups as jail_cgroups

        cg = cgroup_state(jail)
        return bool(cg.cgroup) and jail_cgroups.in_jail(cgroup, (cg.cgroup, *cg.cgroups))

    def unseen(self, rc: Reconciler, jail: JailState, held: list[Socket]) -> set[int]:
        from netjail.backends.jails import socket_cgroups

        if not rc.mount:
            return set()
        inside = socket_cgroups.subtree_inodes(rc.mount, cgroup_state(jail).cgroups)
        return socket_cgroups.SHARED.unseen(held, inside)

    # ---- releasing members ----------------------------------------------------------------

    def release_members(
        self,
        rc: Reconciler,
        jail: JailState,
        members: list[MemberState],
        whole: bool,
        leaving: set[int],
        origins: dict[int, str],
        notes: list[str],
    ) -> set[str]:
        from netjail.backends.errors import NoSuchProcess
        from netjail.backends.jails import cgroups as jail_cgroups
        from netjail.backends.jails import marks as jail_marks

        if not rc.mount:
            return set()
        cg = cgroup_state(jail)
        # a member leaves with its whole sub-cgroup (its --tree and the children born there)
        subs = set(cg.cgroups) if whole else {m.cgroup for m in members if m.cgroup}
        # Out of the cgroups first, then marks: in them, every socket made meanwhile gets
        # the jail's mark (sock_create_mark); the restore pass after the move takes it off
        # those too. A socket left with netjail's mark would be caught by the next jail
        # given the same value.
        holders = leaving | {pid for sub in subs for pid in jail_cgroups.procs(rc.mount, sub)}
        for sub in subs:
            home = jail_cgroups.unit_base(sub) or "/"  # never out of the unit
            default = next((m.original_cgroup for m in members if m.cgroup == sub), home)
            for pid in jail_cgroups.procs(rc.mount, sub):
                leaving.add(pid)
                origin = origins.get(pid, default)
                try:
                    # listed in the sub-cgroup a moment ago: moved only if still in it
                    went = jail_cgroups.move_process(rc.mount, origin, pid, inside=sub)
                except NoSuchProcess:
                    continue
                if went != origin:
                    notes.append(
                        f"PID {pid}: its cgroup {origin} no longer exists; released to {went}"
                        " (the nearest existing ancestor)"
                    )
        jail_marks.restore(jail, sorted(holders))
        return subs

    def holds_others(self, rc: Reconciler, jail: JailState, released: set[str]) -> bool:
        from netjail.backends.jails import cgroups as jail_cgroups

        if not rc.mount:
            return False
        cg = cgroup_state(jail)
        return bool(jail_cgroups.jail_procs(rc.mount, cg.cgroup, set(cg.cgroups) - released))

    def forget_released(self, jail: JailState, released: set[str]) -> None:
        cgroups = cgroup_state(jail).cgroups
        for sub in released:
            cgroups.pop(sub, None)

    def drop_released(self, rc: Reconciler, released: set[str], origins: dict[int, str]) -> None:
        from netjail.backends.jails import cgroups as jail_cgroups

        if rc.mount:
            for sub in released:  # a rule naming a removed cgroup poisons the table
                jail_cgroups.remove(rc.mount, sub, origins)

    # ---- adoption -------------------------------------------------------------------------

    def adopt(self, rc: Reconciler, name: str, found: Found) -> JailState | None:
        from netjail.backends.jails import cgroups as jail_cgroups
        from netjail.backends.launch import pasta
        from netjail.backends.system import identity

        rules = found.rules
        # member cgroups inside units are not below the jail's directory: its rules name them
        in_units = {
            m.cgroup
            for m in (rules.out_selectors if rules else ())
            if m.cgroup
            and jail_cgroups.unit_base(m.cgroup)
            and rc.mount
            and jail_cgroups.inode(rc.mount, m.cgroup) is not None
        }
        if not ((name in found.cgroups or in_units) and rc.mount and name not in found.namespaces):
            return None
        rel = jail_cgroups.jail_path(name)
        members = []
        for pid, sub in jail_cgroups.jail_procs(rc.mount, rel, in_units).items():
            if sub == pasta.cgroup_path(name):
                continue  # the link of a netns jail whose namespace is gone: an orphan
            if stat := identity.read_stat(pid):
                root = jail_cgroups.root_of(sub)
                origin = jail_cgroups.unit_base(sub) or "/"
                members.append(MemberState(pid, stat.start_time, stat.name, origin, root=root, cgroup=sub))
        if not members:
            found.orphan = True  # no other strategy may claim it: removed as an orphan
            return None
        subs = {
            sub: jail_cgroups.inode(rc.mount, sub) or 0
            for sub in [*jail_cgroups.subs(rc.mount, rel), *sorted(in_units)]
        }
        return JailState(
            name,
            StrategyName.CGROUP,
            members=members,
            detail=CgroupState(rel, jail_cgroups.inode(rc.mount, rel) or 0, subs),
        )

    # ---- members --------------------------------------------------------------------------

    def refresh(self, rc: Reconciler, jail: JailState, procs: Mapping[int, Process]) -> bool:
        """Children born in a sub-cgroup join as members of that sub-cgroup's root; a
        sub-cgroup with neither members nor processes is retired."""
        from netjail.backends.jails import cgroups as jail_cgroups
        from netjail.backends.jails.reconcile import is_alive
        from netjail.backends.system import identity

        cg = cgroup_state(jail)
        alive = [m for m in jail.members if is_alive(m)]
        found = jail_cgroups.jail_procs(rc.mount, cg.cgroup, cg.cgroups) if rc.mount else {}
        rc.found[jail.name] = found
        known = {m.pid for m in alive}
        for pid, sub in found.items():
            if pid in known or not (stat := identity.read_stat(pid)):
                continue
            root = jail_cgroups.root_of(sub)
            origin = next((m.original_cgroup for m in alive if m.root == root), "/")
            alive.append(MemberState(pid, stat.start_time, stat.name, origin, root=root, cgroup=sub))
        live = {m.cgroup for m in alive} | set(found.values())
        for sub in [sub for sub in cg.cgroups if sub not in live]:
            del cg.cgroups[sub]
            rc.retired.append(sub)
        jail.members = alive
        return bool(alive)

    def stopped_units(self, rc: Reconciler, jail: JailState) -> str:
        """ " (systemd stopped X.service)" when the jail's members were in units whose cgroups
        systemd removed (a stop or a restart: a restarted unit's cgroup is a new one)."""
        from netjail.backends.jails import cgroups as jail_cgroups
        from netjail.backends.system import systemd_units

        if not rc.mount:
            return ""
        gone = sorted(
            {
                systemd_units.unit_name(base) or base
                for sub in cgroup_state(jail).cgroups
                if (base := jail_cgroups.unit_base(sub)) and jail_cgroups.inode(rc.mount, sub) is None
            }
        )
        return f" (systemd stopped {', '.join(gone)}, and them with it)" if gone else ""

    # ---- upkeep ---------------------------------------------------------------------------

    def upkeep(self, rc: Reconciler, jail: JailState) -> list[str]:
        if not rc.mount:
            return []
        repaired = _ensure_cgroup(rc, jail)
        notes = list(repaired)
        # where each process is was read by the refresh just now, unless the repair moved some
        notes += _bring_back_escapees(rc, jail, None if repaired else rc.found.get(jail.name))
        _read_held_inodes(rc, jail)
        from netjail.backends.jails import accept_queue, in_flight
        from netjail.backends.jails import marks as jail_marks

        had = jail_marks.marked(jail)
        notes += _mark(rc, jail)
        # sockets in no fd table: parked in a member's unix queue, or queued on its listener
        held = (i for m in jail.members for i in rc.raw_by_pid.get(m.pid, ()))
        in_flight.mark_in_flight(jail, jail_marks.local_sockets(held))
        accept_queue.refresh(jail, not had.issuperset(jail_marks.marked(jail)))
        return notes

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        from netjail.backends.jails import cgroups as jail_cgroups

        cg = cgroup_state(jail)
        if cg.cgroup and rc.mount:
            jail_cgroups.remove(rc.mount, cg.cgroup, origins)
            for sub in cg.cgroups:  # those made inside units (gone already if the unit is)
                if not sub.startswith(cg.cgroup + "/"):
                    jail_cgroups.remove(rc.mount, sub, origins)
        return []


def _read_held_inodes(rc: Reconciler, jail: JailState) -> None:
    """Every socket inode a cgroup jail's members hold, listed by sock_diag or not
    (unbound, raw, ICMP ...): what jail_marks marks."""
    from netjail.backends.jails import socket_cgroups

    for m in jail.members:
        if m.status == LAUNCHER:
            continue
        inodes = socket_cgroups.held_inodes(m.pid)
        if inodes is None:
            continue  # exited
        rc.raw_held.update(inodes)
        rc.raw_by_pid[m.pid] = inodes


def _mark(rc: Reconciler, jail: JailState) -> list[str]:
    """Mark every INET socket members hold: those the cgroup rule cannot see (created
    outside the jail, or not listed by sock_diag: unbound, raw, ICMP ...) and those opened
    inside, which INPUT tells apart by their mark once no early demux hands it their cgroup
    (listeners, unconnected UDP; docs/kernel-facts.md #2). Until this period's pass, the
    INPUT cgroup lane covers established ones opened inside."""
    from netjail.backends.jails import marks as jail_marks

    jail_marks.prune(jail, rc.raw_held)  # read just now by _read_held_inodes
    checked = jail_marks.checked(jail)
    # a member holding nothing new costs no pidfd: its fds were read by _read_held_inodes
    todo = [m for m in jail.members if not checked.issuperset(rc.raw_by_pid.get(m.pid, ()))]
    return jail_marks.mark_members(jail, todo)


def _ensure_cgroup(rc: Reconciler, jail: JailState) -> list[str]:
    import contextlib

    from netjail.backends.errors import NoSuchProcess
    from netjail.backends.jails import cgroups as jail_cgroups
    from netjail.backends.jails import marks as jail_marks

    cg = cgroup_state(jail)
    assert rc.mount is not None
    notes = []
    if jail_cgroups.inode(rc.mount, cg.cgroup) is None:
        cg.cgroup_inode = jail_cgroups.create(rc.mount, cg.cgroup)
    for sub, ino in list(cg.cgroups.items()):
        now = jail_cgroups.inode(rc.mount, sub)
        if now == ino and now is not None:
            continue
        if now is None and jail_cgroups.unit_base(sub) is not None:
            notes += _unit_gone(rc, jail, sub)
            continue
        notes.append(
            f"jail {jail.name!r}: cgroup {sub} was removed; re-created it"
            if now is None
            else f"jail {jail.name!r}: cgroup {sub} was re-created by someone; reloaded its rules"
        )
        cg.cgroups[sub] = jail_cgroups.create(rc.mount, sub)
        notes += jail_marks.mark_at_creation(rc.mount, jail, sub)
        for m in jail.members:
            if m.cgroup == sub:
                with contextlib.suppress(NoSuchProcess):
                    jail_cgroups.move_process(rc.mount, sub, m.pid, m.start_time)
    if notes:
        # the old rules still name the dead cgroups: drop the chains so the sync loads them anew
        rc.fw.remove_jail(jail.name)
    return notes


def _unit_gone(rc: Reconciler, jail: JailState, sub: str) -> list[str]:
    """A member cgroup inside a unit vanished while members of it live: systemd removed
    the unit's cgroup (stop, restart), so they were moved out first. Nothing is re-created
    inside the unit: each such member is jailed again where it is now (its processes
    exiting with the unit is the usual case, and they are forgotten before this)."""
    from netjail.backends.errors import NoSuchProcess
    from netjail.backends.jails import cgroups as jail_cgroups
    from netjail.backends.jails import marks as jail_marks
    from netjail.backends.system import identity
    from netjail.backends.system.cgroupfs import read_cgroup

    cg = cgroup_state(jail)
    assert rc.mount is not None
    del cg.cgroups[sub]
    notes = [f"jail {jail.name!r}: cgroup {sub} went with its unit; not re-created there"]
    for m in [m for m in jail.members if m.cgroup == sub]:
        try:
            now = read_cgroup(m.pid)
            stat = identity.read_stat(m.pid)
            if stat is None or stat.state == "Z" or jail_cgroups.inode(rc.mount, now) is None:
                raise NoSuchProcess(f"PID {m.pid} exited")
            m.cgroup = f"{jail_cgroups.place(now)}/{jail.name}/{sub.rsplit('/', 1)[-1]}"
            m.original_cgroup = now
            cg.cgroups[m.cgroup] = jail_cgroups.create(rc.mount, m.cgroup)
            jail_marks.mark_at_creation(rc.mount, jail, m.cgroup)
            jail_cgroups.move_process(rc.mount, m.cgroup, m.pid, m.start_time)
        except NoSuchProcess:
            jail.members.remove(m)
            continue
        notes.append(f"jail {jail.name!r}: PID {m.pid} had left it for {now}; jailed again in {m.cgroup}")
    return notes  # the dead cgroup's selector is dropped by the sync, the new one added


def _bring_back_escapees(
    rc: Reconciler, jail: JailState, inside: Mapping[int, str] | None = None
) -> list[str]:
    """A member moved out of the jail's cgroup by someone else (a service manager, a user)
    is moved back: nothing jailed is silently released. `inside`: pid -> cgroup of what
    the jail's cgroups hold, when just read."""
    from netjail.backends.errors import NoSuchProcess
    from netjail.backends.jails import cgroups as jail_cgroups
    from netjail.backends.system.cgroupfs import read_cgroup

    cg = cgroup_state(jail)
    assert rc.mount is not None
    if inside is None:
        inside = jail_cgroups.jail_procs(rc.mount, cg.cgroup, cg.cgroups)
    notes = []
    for m in jail.members:
        if not m.cgroup or inside.get(m.pid) == m.cgroup or m.status == LAUNCHER:
            continue
        try:
            now = read_cgroup(m.pid)
            # seen a scan ago: the pidfd move re-checks (pid, start time) around the write
            jail_cgroups.move_process(rc.mount, m.cgroup, m.pid, m.start_time)
        except NoSuchProcess:
            continue
        notes.append(f"jail {jail.name!r}: PID {m.pid} had been moved out to {now or '?'}; moved back")
    return notes


STRATEGY = Cgroup()
