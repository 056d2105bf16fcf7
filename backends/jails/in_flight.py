"""Sockets kept in flight: passed over a unix socket (SCM_RIGHTS, even to itself) and not yet
received, a socket is in no fd table, so no marking pass finds it; one made before the block,
kept in a member's unix queue and taken out only for each send, was never cut (attack review:
279-288 of 279-288 datagrams out).

`recvmsg(MSG_PEEK)` on a duplicate of the member's unix socket hands netjail its own fds for the
sockets the first queued message carries, and leaves the message where it was: marking such a
duplicate marks the socket in flight (docs/kernel-facts.md #24). Every watcher pass peeks each
unix socket members hold. Limits: only the head message of each queue is seen (a socket queued
behind another message waits for the pass that finds it first), and a socket whose owner set
SO_PEEK_OFF is not peeked (a peek would move the owner's offset).
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
from collections.abc import Iterable

from netjail.backends.jails import socket_marks
from netjail.backends.jails.state import LAUNCHER, JailState

_SO_PEEK_OFF = getattr(socket, "SO_PEEK_OFF", 42)
_MAX_FDS = 253  # SCM_MAX_FD: the most one message carries
_ANC = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)
_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC


def peeked_fds(dup: int) -> list[int]:
    """Our fds for what the head message of unix socket `dup`'s queue carries (left queued)."""
    with socket.socket(fileno=os.dup(dup)) as s:
        if s.getsockopt(socket.SOL_SOCKET, _SO_PEEK_OFF) >= 0:
            return []
        try:
            _, anc, _, _ = s.recvmsg(1, _ANC, _FLAGS)
        except OSError:
            return []  # empty (EAGAIN), or not readable
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(data[: len(data) - len(data) % got.itemsize])
            fds.extend(got)
    return fds


def mark_in_flight(jail: JailState, unix: Iterable[int]) -> None:
    """Mark the INET sockets queued in the unix sockets (`unix`: their inodes) members hold.
    Recorded with the jail's marks while a member holds them (marks.prune drops the rest)."""
    if not jail.mark or jail.marks_unavailable:
        return
    wanted = set(unix)
    if not wanted:
        return
    done = {inode for inode, _ in jail.marks}
    for m in jail.members:
        if m.status == LAUNCHER:
            continue
        try:
            for h in socket_marks.held(m.pid, m.start_time, wanted.__contains__):
                with contextlib.suppress(OSError):
                    if h.domain() == socket.AF_UNIX:
                        for fd in peeked_fds(h.dup):
                            _mark(jail, fd, done)
        except socket_marks.Unavailable:
            return


def _mark(jail: JailState, fd: int, done: set[int]) -> None:
    try:
        h = socket_marks.Held(os.fstat(fd).st_ino, fd)
        if h.domain() not in (socket.AF_INET, socket.AF_INET6):
            return
        old = h.mark()
        if old & ~jail.mark_mask and not jail.mark_force:
            return  # another program's mark: the fallback sets need its address (not known here)
        if old != jail.mark:
            h.set_mark(jail.mark)
        if h.inode not in done:
            jail.marks.append([h.inode, old if old & ~jail.mark_mask else 0])
            done.add(h.inode)
    except OSError:
        pass
    finally:
        socket_marks._close(fd)
