"""Which sockets a cgroup jail's own rule cannot see, by the kernel's own answer.

`-m cgroup --path SUB` matches a packet by the cgroup its socket was *created* in (DESIGN.md
fact 1), never by who holds the socket now. A member holds sockets created elsewhere: those it
had when jailed, and any handed to it later over a unix socket (SCM_RIGHTS) by a process outside
the jail (issue 8, finding 5). Each such socket needs a selector of its own; a socket created
inside the jail needs none (its cgroup rule drops it), so it must not churn the tables.

sock_diag reports each socket's cgroup id (INET_DIAG_CGROUP_ID, Linux >= 5.7), which on cgroup2
is the inode number of the cgroup's directory: a socket is seen by the jail's rule exactly when
that id is the inode of one of the jail's sub-cgroups or of a cgroup below one (xt_cgroup
matches descendants). Where the kernel does not say (older kernel, no sock_diag), every socket a
member holds is treated as unseen.

Who holds what is read fresh for every member (a readlink of each of its fds) rather than
taken from the inventory's incremental scan, which rescans a process only when its fd count
moves: a member that receives a socket onto the fd number of one it closes keeps its count.

The cgroup id of a socket never changes, so it is remembered per socket (the Socket value:
inode, addresses, state) and the tables are dumped only when a member holds a socket not seen
before.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterable
from pathlib import Path

from netjail.backends import sockdiag
from netjail.backends.model import Socket

_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}


def held_inodes(pid: int) -> list[int] | None:
    """Socket inodes of every fd pid holds right now; None when it is gone."""
    path = f"/proc/{pid}/fd"
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        found = []
        for fd in os.listdir(dfd):
            try:
                link = os.readlink(fd, dir_fd=dfd)
            except OSError:
                continue  # closed meanwhile
            if link.startswith("socket:["):
                found.append(int(link[8:-1]))
        return found
    except OSError:
        return None
    finally:
        os.close(dfd)


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
    """Remembered cgroup ids of sockets, refreshed from sock_diag when new ones turn up."""

    def __init__(self) -> None:
        self._known: dict[Socket, int] = {}
        self.available = True  # until the kernel refuses a dump
        self.dumps = 0  # how many table dumps were needed (for tests and the bench)

    def ids(self, sockets: Collection[Socket]) -> dict[Socket, int]:
        """The cgroup id of each socket the kernel reports one for (absent: unknown)."""
        new = [s for s in sockets if s not in self._known]
        if new and self.available:
            tables = sorted({(_AF[s.family], s.proto) for s in new if s.family in _AF})
            try:
                with sockdiag.open_socket() as nl:
                    found = sockdiag.cgroup_ids(nl, tables)
                self.dumps += 1
            except sockdiag.Unavailable:
                self.available = False
                found = {}
            for s in new:
                if s.inode in found:
                    self._known[s] = found[s.inode]
        return {s: self._known[s] for s in sockets if s in self._known}

    def retain(self, alive: Collection[Socket]) -> None:
        """Forget sockets that no longer exist."""
        self._known = {s: i for s, i in self._known.items() if s in alive}

    def unseen(self, sockets: Collection[Socket], jail_cgroups: set[int]) -> set[int]:
        """Inodes of the sockets whose creating cgroup is not inside the jail (or unknown)."""
        ids = self.ids(sockets)
        return {s.inode for s in sockets if ids.get(s) not in jail_cgroups}


SHARED = SocketCgroups()  # one per process: the watcher builds a new Reconciler every period
