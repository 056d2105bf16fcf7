"""What a block of live processes could not do cleanly, for its result: sockets it leaves open
(netfilter never sees AF_PACKET) and sockets it cuts for processes outside the jail too (one
socket held by several fd tables). Both are facts of the kernel, not failures: the block
stands, and the result says what it means (docs/security.md, known limits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping

from netjail.backends.errors import NetjailError
from netjail.backends.jails.state import JailState, MemberState
from netjail.backends.jails.strategies.cgroup import cgroup_state
from netjail.backends.model import Member, Process, Socket, UnfilterableSocket
from netjail.backends.model_block import BlockResult, SharedSocket, UnfilterableHeld
from netjail.backends.system import packet_sockets, shared_sockets
from netjail.backends.system.cgroupfs import read_cgroup

SECCOMP_HINT = (
    "relaunch it under seccomp (netjail run --seccomp -- COMMAND, or R in the TUI), which refuses "
    "to create such sockets"
)


def unfilterable(
    members: Iterable[MemberState], procs: Mapping[int, Process]
) -> tuple[UnfilterableHeld, ...]:
    return tuple(
        UnfilterableHeld(m.pid, m.name, procs[m.pid].unfilterable)
        for m in members
        if m.pid in procs and procs[m.pid].unfilterable
    )


def unfilterable_seen(
    members: Iterable[MemberState], packet: Mapping[int, Collection[int]]
) -> tuple[UnfilterableHeld, ...]:
    """The same from the marking pass's findings (PID -> AF_PACKET inodes it holds): the packet
    table of the namespace is read only when one was found."""
    out = []
    table: dict[int, UnfilterableSocket] | None = None
    for m in members:
        inodes = packet.get(m.pid)
        if not inodes:
            continue
        if table is None:
            try:
                table = packet_sockets.read_packet_table(f"/proc/{m.pid}", True)
            except OSError:
                table = {}
        found = tuple(table.get(i) or UnfilterableSocket("packet", i, "", 0, 0, "") for i in sorted(inodes))
        out.append(UnfilterableHeld(m.pid, m.name, found))
    return tuple(out)


def held_by_members(members: Iterable[MemberState], procs: Mapping[int, Process]) -> dict[int, list[int]]:
    """inode -> the members holding it, from the inventory's view of them."""
    held: dict[int, list[int]] = {}
    for m in members:
        for sock in procs[m.pid].sockets if m.pid in procs else ():
            held.setdefault(sock.inode, []).append(m.pid)
    return held


def shared(
    jail: JailState,
    members: Iterable[MemberState],
    held: Mapping[int, list[int]],
    describe: Callable[[], Mapping[int, Socket]],
) -> tuple[SharedSocket, ...]:
    """The sockets the block cuts (`held`: inode -> the members holding it) that processes
    outside the jail hold too. Processes in the jail's cgroups count as inside. `describe()`
    gives the sockets by inode, asked only when one is shared (it costs a socket table read)."""
    if not held:
        return ()
    members = list(members)
    skip = {m.pid for m in jail.members} | {os.getpid()}
    found = shared_sockets.holders(held, shared_sockets.relatives(m.pid for m in members), skip)
    out = []
    described: Mapping[int, Socket] | None = None
    for inode, holders in sorted(found.items()):
        others = tuple(
            Member(pid, start, True, name) for pid, start, name in holders if not _inside(jail, pid)
        )
        if others:
            described = describe() if described is None else described
            s = described.get(inode)
            out.append(SharedSocket(inode, _describe(s) if s else "", tuple(held[inode]), others))
    return tuple(out)


def _inside(jail: JailState, pid: int) -> bool:
    try:
        return read_cgroup(pid).startswith(cgroup_state(jail).cgroup + "/")
    except NetjailError:
        return False


def _describe(s: Socket) -> str:
    addr = f"[{s.local_addr}]" if ":" in s.local_addr else s.local_addr
    return f"{s.proto}{'6' if s.family == 'inet6' else ''} {s.state} {addr}:{s.local_port}"


def result_lines(result: BlockResult) -> list[str]:
    """The result's warnings in words, one line each (the CLI prints them, the TUI notifies)."""
    lines = []
    for held in result.unfilterable:
        for s in held.sockets:
            lines.append(
                f"PID {held.pid} ({held.name}) keeps its {packet_sockets.describe(s)} open: AF_PACKET "
                "works below netfilter, no jail rule can cut it; to block it fully, " + SECCOMP_HINT
            )
    for sh in result.shared:
        others = ", ".join(f"{m.pid} ({m.name})" for m in sh.others)
        what = f" ({sh.description})" if sh.description else ""
        by = f"of PID {', '.join(map(str, sh.members))}" if sh.members else "held in the jail"
        # PID 1 holding it is socket activation: no tree to block, the service is the unit
        hint = (
            "relaunch the service jailed to keep PID 1's copy out of it"
            if any(m.pid == 1 for m in sh.others)
            else "block --tree on their common parent to jail them all"
        )
        lines.append(
            f"socket:[{sh.inode}]{what} {by} is shared with PID {others} outside the jail: it "
            f"is one socket, now cut for them too; {hint}"
        )
    return lines
