"""Which sockets a cgroup jail's own rule cannot see, by the kernel's own answer.

`-m cgroup --path SUB` matches a packet by the cgroup its socket was *created* in
(docs/kernel-facts.md #1), never by who holds the socket now. A member holds sockets created
elsewhere: those it had when jailed, and any handed to it later over a unix socket (SCM_RIGHTS)
by a process outside the jail (issue 8, finding 5). Each such socket gets the jail's mark
(jail_marks), or an address selector where it cannot be marked; a connected socket created
inside the jail needs neither (its cgroup rule drops what it sends).

sock_diag reports each socket's cgroup id (INET_DIAG_CGROUP_ID, Linux >= 5.7, docs/kernel-facts.md #18),
which on cgroup2
is the inode number of the cgroup's directory: a socket is seen by the jail's rule exactly when
that id is the inode of one of the jail's sub-cgroups or of a cgroup below one (xt_cgroup
matches descendants). Where the kernel does not say (older kernel, no sock_diag), every socket a
member holds is treated as unseen.

Who holds what is read fresh for every member (a readlink of each of its fds) rather than
taken from the inventory's incremental scan, which rescans a process only when its fd count
moves: a member that receives a socket onto the fd number of one it closes keeps its count.

The cgroup id of a socket never changes, so it is remembered per socket (inode, checked
against the addresses and state) and the tables are dumped only when a member holds a socket not
seen before.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Container, Iterable
from pathlib import Path

from netjail.backends.model import Socket
from netjail.backends.system import fd_tables, sockdiag
from netjail.backends.system.procio import socket_inodes

_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}


def held_inodes(pid: int) -> list[int] | None:
    """Socket inodes of every fd pid holds right now, in every fd table it has (fd_tables);
    None when it is gone."""
    found: list[int] = []
    alive = False
    for tid in fd_tables.table_holders(pid):
        inodes = _inodes_in(fd_tables.fd_dir(pid, tid))
        if inodes is not None:
            alive = True
            found += inodes
    return found if alive else None


def _inodes_in(path: str) -> list[int] | None:
    try:
        return socket_inodes(path)
    except OSError:
        return None


def subtree_inodes(mount: Path, subs: Iterable[str]) -> set[int]:
    """Inodes of the given cgroups (relative to the mount) and of every cgroup below them."""
    found: set[int] = set()
    for sub in subs:
        top = mount / sub.lstrip("/")
        for dirpath, _dirs, _files in os.walk(top):
            try:
                found.add(os.stat(dirpath).st_ino)
            except OSError:
                continue
    return found


class SocketCgroups:
    """Remembered cgroup ids of sockets, refreshed from sock_diag when new ones turn up.

    Keyed by inode and checked against the Socket (the inventory hands back the same object for
    an unchanged socket, so that check is mostly an identity test): hashing thousands of
    dataclasses every period would cost more than the rest of this check."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[Socket, int]] = {}
        self.available = True  # until the kernel refuses a dump
        self.dumps = 0  # how many table dumps were needed (for tests and the bench)

    def _get(self, sock: Socket) -> int | None:
        known = self._known.get(sock.inode)
        if known is None or (known[0] is not sock and known[0] != sock):
            return None
        return known[1]

    def _fill(self, sockets: Collection[Socket]) -> None:
        new = [s for s in sockets if self._get(s) is None]
        if not new or not self.available:
            return
        tables = sorted({(_AF[s.family], s.proto) for s in new if s.family in _AF})
        try:
            with sockdiag.open_socket() as nl:
                found = sockdiag.cgroup_ids(nl, tables)
            self.dumps += 1
        except sockdiag.Unavailable:
            self.available = False
            return
        for s in new:
            if s.inode in found:
                self._known[s.inode] = (s, found[s.inode])

    def ids(self, sockets: Collection[Socket]) -> dict[Socket, int]:
        """The cgroup id of each socket the kernel reports one for (absent: unknown)."""
        self._fill(sockets)
        return {s: i for s in sockets if (i := self._get(s)) is not None}

    def retain(self, alive: Container[int]) -> None:
        """Forget sockets whose inode no longer exists."""
        self._known = {i: v for i, v in self._known.items() if i in alive}

    def unseen(self, sockets: Collection[Socket], jail_cgroups: set[int]) -> set[int]:
        """Inodes of the sockets whose creating cgroup is not inside the jail (or unknown)."""
        self._fill(sockets)
        return {s.inode for s in sockets if self._get(s) not in jail_cgroups}


SHARED = SocketCgroups()  # one per process: the watcher builds a new Reconciler every period
