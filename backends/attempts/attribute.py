"""Which member of a jail sent a logged packet, where the kernel's facts single one out.

NFLOG tells the uid and gid of the socket's file (the credentials it was opened with), never a
PID: a socket belongs to a file, and a file to every process that holds it (after fork, after
SCM_RIGHTS). So, for one row, from the first packet of a batch (docs/attempts.md, "The PID"):

  1. "only member": the jail has one live process;
  2. "uid": one live process of the jail has the socket's uid as its filesystem uid;
  3. "socket": the socket of the packet's local address and port (and remote, for TCP) still
     exists (sock_diag), and exactly one process of the jail holds it among its fds.

Anything else stays unattributed: two processes holding the socket, a socket closed before the
collector asked (a failed connect() closed at once), a jail whose processes all share the uid.
Answers are remembered per socket (jail, protocol, local address and port, uid): a flood from
one socket asks once.
"""

from __future__ import annotations

import socket
from pathlib import Path

from netjail.backends.attempts.batch import Batch
from netjail.backends.errors import NetjailError
from netjail.backends.jails import cgroups as jail_cgroups
from netjail.backends.jails.state import Store
from netjail.backends.jails.strategies.cgroup import CgroupState
from netjail.backends.system import sockdiag
from netjail.backends.system.cgroupfs import find_cgroup2
from netjail.backends.system.identity import read_stat
from netjail.backends.system.procio import socket_inodes

MAX_LOOKUPS = 16  # socket lookups a write: a port scan of new connections asks for the rest later
LIMIT = 4096

Found = tuple[int | None, str | None]


class Attributor:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._known: dict[tuple[str, str, str, int, int | None], Found] = {}
        self._nl: socket.socket | None = None

    def __call__(self, batch: Batch) -> None:
        todo = [(key, row) for key, row in batch.rows.items() if row.pid is None and row.local]
        if not todo:
            return
        procs: dict[str, list[int]] | None = None
        lookups = 0
        for key, row in todo:
            assert row.local is not None
            ident = (key[0], key[2], row.local[0], row.local[1], row.uid)
            found = self._known.get(ident)
            if found is None:
                if procs is None:
                    procs = self._procs()
                members = procs.get(key[0], [])
                found = _by_members(members, row.uid)
                if found[0] is None and members:
                    if lookups >= MAX_LOOKUPS:
                        continue  # asked again at the next write
                    lookups += 1
                    found = self._by_socket(members, key[2], key[3], row.local)
                if len(self._known) >= LIMIT:
                    self._known.clear()
                self._known[ident] = found
            row.pid, row.pid_from = found

    def _procs(self) -> dict[str, list[int]]:
        """Live processes of each jail: its cgroup's, or the members the registry lists."""
        out: dict[str, list[int]] = {}
        try:
            registry = Store(self.directory).load()
        except (OSError, ValueError, NetjailError):  # a registry being replaced: next write
            return out
        mount = find_cgroup2()
        for name, jail in registry.jails.items():
            pids: set[int] = set()
            detail = jail.detail
            if isinstance(detail, CgroupState) and detail.cgroup and mount is not None:
                pids.update(jail_cgroups.jail_procs(Path(mount.path), detail.cgroup, detail.cgroups))
            for m in jail.members:
                stat = read_stat(m.pid)
                if stat is not None and stat.start_time == m.start_time and stat.state not in ("Z", "X"):
                    pids.add(m.pid)
            out[name] = sorted(pids)
        return out

    def _by_socket(self, members: list[int], proto: str, remote: str, local: tuple[str, int]) -> Found:
        if proto not in ("tcp", "udp"):
            return None, None
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        try:
            if self._nl is None:
                self._nl = sockdiag.open_socket()
            sockets = sockdiag.dump(self._nl, [(family, proto)])
        except (OSError, sockdiag.Unavailable):
            return None, None
        addr, port = local
        inodes = {
            s.inode
            for s in sockets
            if s.local_port == port
            and s.local_addr in (addr, "0.0.0.0", "::")
            and (proto == "udp" or s.remote_addr == remote or s.state == "LISTEN")
        }
        if not inodes:
            return None, None
        holders = []
        for pid in members:
            try:
                if inodes.intersection(socket_inodes(f"/proc/{pid}/fd")):
                    holders.append(pid)
            except OSError:
                continue  # gone meanwhile
        return (holders[0], "socket") if len(holders) == 1 else (None, None)

    def close(self) -> None:
        if self._nl is not None:
            self._nl.close()
            self._nl = None


def _by_members(members: list[int], uid: int | None) -> Found:
    if len(members) == 1:
        return members[0], "only member"
    if uid is None:
        return None, None
    same = [pid for pid in members if _fsuid(pid) == uid]
    return (same[0], "uid") if len(same) == 1 else (None, None)


def _fsuid(pid: int) -> int | None:
    """The filesystem uid: what the kernel stamps on a file it opens (a socket's f_cred)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[4])
    except (OSError, ValueError, IndexError):
        return None
    return None
