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

A peek hands over every fd the message carries, files too, and closing a file of a FUSE mount
waits for its daemon's FLUSH answer, uninterruptibly (a user with /dev/fuse, the default on most
distributions, writes that daemon): closed on the watcher's thread, one such fd queued in a
member's unix socket stopped every later pass (attack review). What is not a socket is told
apart without calling into its file system (the /proc/self/fd link) and closed on a closer
thread of its own; while that thread waits on more than MAX_CLOSING fds, no socket is peeked.
"""

from __future__ import annotations

import array
import contextlib
import os
import queue
import socket
import threading
from collections.abc import Iterable

from netjail.backends.jails import socket_marks
from netjail.backends.jails.state import LAUNCHER, JailState

_SO_PEEK_OFF = getattr(socket, "SO_PEEK_OFF", 42)
_MAX_FDS = 253  # SCM_MAX_FD: the most one message carries
_ANC = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)
_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC


MAX_CLOSING = 1024  # fds a hung closer may hold before peeks stop (the watcher's limit is higher)


class _Closer:
    """Closes fds on a daemon thread: a close that never returns stalls it, not the caller."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.pending = 0
        self._thread: threading.Thread | None = None

    def close(self, fd: int) -> None:
        with self._lock:
            self.pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="in-flight-closer", daemon=True)
                self._thread.start()
        self._queue.put(fd)

    def _run(self) -> None:
        while True:
            fd = self._queue.get()
            with contextlib.suppress(OSError):
                os.close(fd)
            with self._lock:
                self.pending -= 1


closer = _Closer()


def _is_socket(fd: int) -> bool:
    """From the fd's /proc link, which names a socket by its inode: no file system is asked."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:[")
    except OSError:
        return False


def peeked_fds(dup: int) -> list[int]:
    """Our fds for the sockets the head message of unix socket `dup`'s queue carries (left
    queued); the other fds it carries go to the closer."""
    if closer.pending > MAX_CLOSING:
        return []
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
    sockets = [fd for fd in fds if _is_socket(fd)]
    for fd in fds:
        if fd not in sockets:
            closer.close(fd)
    return sockets


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
