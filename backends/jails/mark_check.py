"""`block` refuses a socket that carries another program's mark, and rolls back what it did.

netjail owns one bit range of the socket mark (NETJAIL_MARK_MASK). A socket whose mark has bits
outside it was marked by someone else, and policy routing, a VPN (WireGuard's fwmark) or a
service mesh may rely on it: re-marking it would change where its packets go. `block` names
such sockets and stops, unless --force, which re-marks them (the jail remembers the choice: the
watcher re-marks later ones too) and puts each one's original mark back on unblock.

The marking pass finds them (jail_marks leaves them alone); block then raises and its rollback
undoes the cgroup move, the rules and the marks already set. A check of its own before acting
would read every socket twice: 40 ms more for a block of 2,000 sockets.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from netjail.backends.errors import ForeignMark
from netjail.backends.jails import socket_marks
from netjail.backends.jails.state import LAUNCHER, MemberState
from netjail.backends.model import Socket

_INET = (socket.AF_INET, socket.AF_INET6)


@dataclass(frozen=True, slots=True)
class ForeignSocket:
    pid: int
    inode: int
    mark: int


def foreign_marked(
    members: Iterable[MemberState], mask: int, inodes: Collection[int] | None = None
) -> list[ForeignSocket]:
    """The AF_INET/AF_INET6 sockets these members hold (of `inodes`, when given) whose mark has
    bits outside `mask`. Without pidfd_getfd nothing is re-marked at all: nothing to refuse."""
    found: list[ForeignSocket] = []
    wanted = None if inodes is None else inodes.__contains__
    for m in members:
        if m.status == LAUNCHER:
            continue
        try:
            for h in socket_marks.held(m.pid, m.start_time, wanted):
                try:
                    if h.domain() in _INET and (mark := h.mark()) & ~mask:
                        found.append(ForeignSocket(m.pid, h.inode, mark))
                except OSError:
                    continue  # closed meanwhile
        except socket_marks.Unavailable:
            return found
    return found


def _address(s: Socket) -> str:
    def end(addr: str, port: int) -> str:
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    local = end(s.local_addr, s.local_port)
    if s.remote_port:
        return f" ({s.proto} {local} -> {end(s.remote_addr, s.remote_port)})"
    return f" ({s.proto} {local})"


def refusal(found: list[ForeignSocket], mask: int, sockets: Mapping[int, Socket]) -> ForeignMark:
    """One line naming the first such socket (with its address when sock_diag lists it)."""
    if not found:  # closed since the marking pass saw it
        return ForeignMark(
            f"a socket to jail carried a mark outside netjail's range {mask:#x}: not blocked "
            "(netjail block --force re-marks such sockets until unblock)"
        )
    first = found[0]
    addr = _address(sockets[first.inode]) if first.inode in sockets else ""
    more = f" (and {len(found) - 1} more socket(s))" if len(found) > 1 else ""
    return ForeignMark(
        f"PID {first.pid} socket:[{first.inode}]{addr} carries mark {first.mark:#x}, outside "
        f"netjail's range {mask:#x}{more}: not blocked, another program's routing or VPN may "
        "rely on it (netjail block --force re-marks it until unblock)"
    )


def forced_notes(jail: str, marked: Iterable[list[int]], mask: int) -> list[str]:
    """For the [inode, original mark] pairs a --force block marked: those that were foreign."""
    return [
        f"jail {jail!r}: socket:[{inode}] carried mark {old:#x} (another program's): re-marked "
        "(--force); its mark is put back on unblock"
        for inode, old in marked
        if old & ~mask
    ]
