"""A cgroup jail's socket marks: put on every socket its members hold that the jail's cgroup
rule cannot see, remembered in the jail's state, and taken off again on release.

Checked once per socket: an inode marked, left alone (a foreign mark) or found not to be
AF_INET/AF_INET6 is never duplicated again; the mark itself lives in the kernel's socket.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from netjail.backends.jails import sock_create_mark, socket_marks
from netjail.backends.jails.state import LAUNCHER, JailState, MemberState
from netjail.backends.system import identity

_OTHER: set[int] = set()  # inodes of sockets netfilter does not filter (unix, netlink, packet)
_PACKET: set[int] = set()  # those of them that are AF_PACKET (a block reports them)


@dataclass(slots=True)
class Seen:
    """What marking passes saw of one member, for the block's report (block_report)."""

    inet: set[int] = field(default_factory=set)  # marked now, or left alone (a foreign mark)
    packet: set[int] = field(default_factory=set)
    anon: set[str] = field(default_factory=set)


def assign(jail: JailState, used: Iterable[int]) -> None:
    """Give a jail its mark value (once; NETJAIL_MARK_MASK read now, then kept in its state)."""
    if jail.mark:
        return
    jail.mark_mask = socket_marks.mark_mask()
    jail.mark = socket_marks.allocate(jail.mark_mask, used)


def mark_at_creation(mount: Path, jail: JailState, sub: str) -> list[str]:
    """Sockets created in the member cgroup `sub` get the jail's mark as they are made
    (sock_create_mark); where that cannot be, the watcher's period marking is all (a note)."""
    if not jail.mark:
        return []
    why = sock_create_mark.attach(mount, sub, jail.mark)
    if why is None:
        return []
    return [f"jail {jail.name!r}: {why}; sockets opened inside are marked within a watcher period"]


def marked(jail: JailState) -> set[int]:
    return {inode for inode, _ in jail.marks}


def checked(jail: JailState) -> set[int]:
    """Inodes that need no look: marked, left alone, or not filtered by netfilter at all."""
    return marked(jail) | set(jail.mark_foreign) | _OTHER


def mark_members(
    jail: JailState,
    members: Iterable[MemberState],
    inside: Container[int] = (),
    seen: MutableMapping[int, Seen] | None = None,
) -> list[str]:
    """Mark the sockets these members hold, except those created inside the jail (`inside`:
    the cgroup rule sees them) and those already checked. Returns notes; what each member
    was seen holding is added to `seen` (by PID)."""
    if not jail.mark or jail.marks_unavailable:
        return []  # refused once: address rules only, without trying every period again
    notes: list[str] = []
    done = marked(jail)
    foreign = set(jail.mark_foreign)

    def skip(inode: int) -> bool:
        return inode in done or inode in foreign or inode in _OTHER or inode in inside

    for m in members:
        if m.status == LAUNCHER:
            continue
        result = socket_marks.mark_sockets(
            m.pid, m.start_time, jail.mark, jail.mark_mask, skip, force=jail.mark_force
        )
        if seen is not None:
            got = seen.setdefault(m.pid, Seen())
            got.inet.update(result.marked, result.foreign)
            got.packet.update(result.packet, result.scan.inodes & _PACKET)
            got.anon |= result.scan.anon
        _PACKET.update(result.packet)
        if result.unavailable is not None:
            if not jail.marks_unavailable:
                jail.marks_unavailable = True
                notes.append(
                    f"jail {jail.name!r}: cannot mark the sockets of PID {m.pid} "
                    f"(pidfd_getfd: {result.unavailable}); fallback in use: its existing sockets "
                    "are matched by address through the jail's fallback sets (one set lookup, any number "
                    "of sockets), which do not cover unbound, raw or ICMP sockets"
                )
            continue
        for inode, old in result.marked.items():
            jail.marks.append([inode, old])
            done.add(inode)
        for inode, old in result.foreign.items():
            jail.mark_foreign.append(inode)
            foreign.add(inode)
            notes.append(
                f"jail {jail.name!r}: socket:[{inode}] of PID {m.pid} already carries mark "
                f"{old:#x}, outside netjail's range {jail.mark_mask:#x} (another program's "
                "routing or VPN may rely on it): not re-marked; fallback in use: it is matched by "
                "address through the jail's fallback sets"
            )
        _OTHER.update(result.other)
    return notes


def restore(jail: JailState, pids: Iterable[int]) -> None:
    """Put the original marks back on the sockets these processes still hold, and take the
    jail's mark off those it was never recorded on (made or accepted since the last pass);
    call it once they are out of the jail's cgroups, where nothing marks new sockets any more.
    The inodes done are forgotten (a member that stays and shares one gets it marked again
    next period)."""
    if not jail.mark or jail.marks_unavailable:
        return
    originals = {inode: old for inode, old in jail.marks}
    foreign = set(jail.mark_foreign)

    def skip(inode: int) -> bool:  # known not to carry the mark: no pidfd_getfd for it
        return inode in _OTHER or inode in foreign

    done: set[int] = set()
    for pid in pids:
        stat = identity.read_stat(pid)
        if stat is not None:
            done |= socket_marks.restore(pid, stat.start_time, originals, jail.mark_mask, jail.mark, skip)
    jail.marks = [pair for pair in jail.marks if pair[0] not in done]


def prune(jail: JailState, live: Collection[int]) -> None:
    """Forget sockets no member holds any more (closed: their mark went with them)."""
    jail.marks = [pair for pair in jail.marks if pair[0] in live]
    jail.mark_foreign = [i for i in jail.mark_foreign if i in live]


def forget_other(live: Collection[int]) -> None:
    _OTHER.intersection_update(live)
    _PACKET.intersection_update(live)


def local_sockets(held: Iterable[int]) -> set[int]:
    """Of these inodes, the sockets seen not to be INET nor AF_PACKET: unix (and netlink) ones,
    whose queues may hold sockets in flight (in_flight)."""
    return (set(held) & _OTHER) - _PACKET
