"""Processes and their inet sockets, in one system-wide pass over /proc, incremental across calls.

Costs (docs/kernel-facts.md #7, and bench/inventory.py) decide the shape:

* Socket tables are read once per distinct network namespace (socket_tables): our own over
  sock_diag netlink, the others through /proc/<pid>/net/* of one process in each (that file
  shows the process's netns: no setns needed). Never per-process psutil `net_connections()`.
* Who holds a socket comes from /proc/<pid>/fd readlinks ("socket:[INODE]"), the expensive part.
  Since Linux 6.2, stat() of /proc/<pid>/fd reports the number of open fds (docs/kernel-facts.md #19),
  even for processes
  whose fds we may not list. A process is rescanned only when it is new or that number moved;
  a socket inode nobody known holds sends us looking through the other processes (socket owners
  first) until it is found. Inodes a full search did not find (held by processes we may not
  read) are remembered so they do not trigger a search on every refresh.
* Per-process data that only exec can change (cmdline, exe, uid, user ...) is cached by
  (pid, start time) and re-read when comm changes (an exec under the same PID). The cgroup is
  re-read every time: a jail moves processes between cgroups.

One gap is accepted for speed: a process that closes a shared socket and opens a non-socket fd
between two refreshes keeps that socket listed until its fd count moves again (on kernels
before 6.2, which report no fd count, until the process is rescanned for a new socket).
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterable
from dataclasses import dataclass

from netjail.backends.errors import OperationFailed
from netjail.backends.model import Process, Snapshot, Socket, UnfilterableSocket
from netjail.backends.system import systemd_units
from netjail.backends.system.packet_sockets import read_packet_table
from netjail.backends.system.procfs import (
    ProcStat,
    display_name,
    ns_inode,
    parse_cgroup_v2,
    parse_cmdline,
    parse_stat,
    parse_status_ids,
    process_state,
)
from netjail.backends.system.procio import netns_inode, read_all, read_small, socket_inodes
from netjail.backends.system.sockdiag import Traffic
from netjail.backends.system.socket_tables import SocketTables

Key = tuple[int, int]  # (pid, start time): a PID alone is not an identity
_GONE = (FileNotFoundError, ProcessLookupError)
# comm, argv and cgroup names are bytes a process or a user chose, not always UTF-8: keep them
# (surrogates), never fail the whole scan on one of them
_RAW = "surrogateescape"


class _Gone(Exception):
    """The process exited while we were reading it."""


@dataclass(frozen=True, slots=True)
class _Static:
    """What only exec changes, cached per (pid, start time)."""

    comm: str
    name: str
    exe: str
    cmdline: tuple[str, ...]
    uid: int | None
    gid: int | None
    user: str
    exe_denied: bool


@dataclass(frozen=True, slots=True)
class _Fds:
    count: int  # st_size of /proc/PID/fd when scanned (-1: the kernel does not report it)
    inodes: tuple[int, ...] | None  # socket inodes held, ascending; None: listing denied


@dataclass(slots=True)
class _Live:
    """One process seen during this refresh."""

    pid: int
    key: Key
    stat: ProcStat
    static: _Static
    netns: int | None
    netns_denied: bool
    fd_count: int | None  # None: no fd directory (kernel thread, zombie)


class Inventory:
    """Snapshots of processes and their inet sockets; keep one instance to refresh cheaply.

    Not thread-safe: one caller at a time (the TUI polls from one worker, never overlapping).
    """

    def __init__(self, proc_root: str | os.PathLike[str] = "/proc", traffic: bool = False) -> None:
        """traffic=True: snapshots carry each process's TCP send/receive rates since the last
        one (from tcp_info in the same sock_diag dumps; see _Rates)."""
        self._root = os.fspath(proc_root).rstrip("/") or "/"
        self._static: dict[Key, _Static] = {}
        self._fds: dict[Key, _Fds] = {}
        self._unowned: set[int] = set()
        self._tables = SocketTables(self._root, traffic=traffic)
        self._traffic = traffic
        self._last_traffic: dict[int, Traffic] = {}
        self._last_at: float | None = None
        self._users: dict[int, str] = {}
        self._fd_counts = self._kernel_counts_fds()

    # ---- public API ----------------------------------------------------------------------

    def snapshot(self, all_processes: bool = True) -> Snapshot:
        """Every process (or only those holding inet sockets) with its sockets, right now."""
        taken_at = time.time()
        denied: dict[str, int] = {}
        live = self._scan_processes(denied)
        counted_at = time.monotonic()
        table, per_netns, packets = self._read_tables(live, denied)
        fds = self._resolve_owners(live, table, per_netns)
        rates = self._rates(counted_at) if self._traffic else None

        processes: list[Process] = []
        fds_denied = 0
        for p in live:
            f = fds.get(p.key)
            sockets: tuple[Socket, ...] = ()
            blind: tuple[UnfilterableSocket, ...] = ()
            if f is not None:
                if f.inodes is None:
                    fds_denied += 1
                elif f.inodes:
                    sockets = tuple(filter(None, map(table.get, f.inodes)))
                    if packets:
                        blind = tuple(filter(None, map(packets.get, f.inodes)))
            if not sockets and not blind and not all_processes:
                continue
            try:
                cgroup = parse_cgroup_v2(read_small(f"{self._root}/{p.pid}/cgroup").decode(errors=_RAW))
            except _GONE:
                continue
            except PermissionError:
                cgroup = ""
                _count(denied, "cgroup")
            moved = rates.of(f.inodes) if rates is not None and f is not None and f.inodes else None
            processes.append(self._process(p, cgroup, sockets, blind, moved))

        for p in live:
            if p.static.exe_denied:
                _count(denied, "exe")
            if p.netns_denied:
                _count(denied, "netns")
        if fds_denied:
            denied["fds"] = fds_denied
            hidden = len(self._unowned)
            if hidden:
                denied["owners"] = hidden
        return Snapshot(
            processes=tuple(processes),
            taken_at=taken_at,
            own_netns=self._own_netns(),
            denied=_denied_lines(denied),
        )

    def lookup(self, pid: int, sockets: bool = True) -> Process | None:
        """One process read fresh (nothing cached), with its sockets unless told not to (they
        cost an fd-table walk and a socket-table dump); None if it does not exist."""
        return self.lookup_many([pid], sockets).get(pid)

    def lookup_many(self, pids: Iterable[int], with_sockets: bool = True) -> dict[int, Process]:
        """These processes read fresh, with their sockets; those that do not exist are left out.

        What a block needs, without a system-wide pass: each process's own /proc files and fd
        links, and one socket-table read per network namespace among them, kept for the
        inodes they hold (sock_diag cannot filter a dump by inode: that takes the socket cookie)."""
        found: list[tuple[_Live, str, tuple[int, ...] | None]] = []
        for pid in dict.fromkeys(pids):
            if pid <= 0:
                continue
            base = f"{self._root}/{pid}"
            try:
                stat = parse_stat(read_small(f"{base}/stat").decode(errors=_RAW))
                static = self._read_static(base, stat)
                netns, _ = self._read_netns(base)
                cgroup = parse_cgroup_v2(read_small(f"{base}/cgroup").decode(errors=_RAW))
                inodes = None if stat.kernel_thread or not with_sockets else self._scan_fds(base)
            except (_Gone, *_GONE):
                continue
            except PermissionError:
                continue  # hidepid: the process is not ours to see
            live = _Live(pid, (pid, stat.start_time), stat, static, netns, False, None)
            found.append((live, cgroup, inodes))
        tables: dict[int | None, dict[int, Socket]] = {}
        packet_tables: dict[int | None, dict[int, UnfilterableSocket]] = {}
        own = self._own_netns()
        out: dict[int, Process] = {}
        for live, cgroup, inodes in found:
            sockets: tuple[Socket, ...] = ()
            blind: tuple[UnfilterableSocket, ...] = ()
            if inodes:
                table = tables.get(live.netns)
                if table is None:
                    try:
                        table = {s.inode: s for s in self._tables.of_process(live.pid)}
                    except (*_GONE, PermissionError):
                        continue  # left meanwhile, or its namespace is not ours to read
                    if live.netns is not None:
                        tables[live.netns] = table  # one read per namespace
                sockets = tuple(filter(None, map(table.get, inodes)))
                packets = packet_tables.get(live.netns)
                if packets is None:
                    packets = self._packets_of(f"{self._root}/{live.pid}", live.netns == own) or {}
                    if live.netns is not None:
                        packet_tables[live.netns] = packets
                if packets:
                    blind = tuple(filter(None, map(packets.get, inodes)))
            out[live.pid] = self._process(live, cgroup, sockets, blind)
        return out

    # ---- traffic -----------------------------------------------------------------------

    def _rates(self, now: float) -> _Rates | None:
        """Per-socket byte deltas since the last refresh; None on the first one (no baseline)."""
        traffic = self._tables.traffic
        last, last_at = self._last_traffic, self._last_at
        self._last_traffic, self._last_at = traffic, now
        if last_at is None or now <= last_at:
            return None
        return _Rates(traffic, last, now - last_at)

    # ---- processes ---------------------------------------------------------------------

    def _scan_processes(self, denied: dict[str, int]) -> list[_Live]:
        root = self._root
        try:
            names = os.listdir(root)
        except OSError as exc:
            raise OperationFailed(f"cannot list {root}: {exc.strerror}") from exc
        live: list[_Live] = []
        statics: dict[Key, _Static] = {}
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            base = f"{root}/{name}"
            try:
                stat = parse_stat(read_small(f"{base}/stat").decode(errors=_RAW))
                key = (pid, stat.start_time)
                static = self._static.get(key)
                if static is None or static.comm != stat.name:
                    static = self._read_static(base, stat)
                if stat.kernel_thread:
                    netns, netns_denied, fd_count = None, False, None
                else:
                    netns, netns_denied = self._read_netns(base)
                    fd_count = None if stat.state == "Z" else self._fd_count(base)
            except (_Gone, *_GONE):
                continue
            except PermissionError:
                _count(denied, "status")  # hidepid-style restriction on the whole process
                continue
            statics[key] = static
            live.append(_Live(pid, key, stat, static, netns, netns_denied, fd_count))
        self._static = statics
        return live

    def _read_static(self, base: str, stat: ProcStat) -> _Static:
        if stat.kernel_thread:
            return _Static(stat.name, stat.name, "", (), 0, 0, "root", False)
        try:
            cmdline = parse_cmdline(read_all(f"{base}/cmdline"))
            uid, gid = parse_status_ids(read_small(f"{base}/status").decode(errors=_RAW))
        except _GONE as exc:
            raise _Gone from exc
        exe, exe_denied = "", False
        try:
            exe = os.readlink(f"{base}/exe")
        except PermissionError:
            exe_denied = True
        except FileNotFoundError:
            pass  # zombie, or exited (noticed by the next read)
        return _Static(
            comm=stat.name,
            name=display_name(stat.name, cmdline),
            exe=exe,
            cmdline=cmdline,
            uid=uid,
            gid=gid,
            user=self._user(uid),
            exe_denied=exe_denied,
        )

    @staticmethod
    def _read_netns(base: str) -> tuple[int | None, bool]:
        try:
            return ns_inode(os.readlink(f"{base}/ns/net")), False
        except PermissionError:
            return None, True
        except FileNotFoundError:
            return None, False  # zombie: no namespaces any more

    def _kernel_counts_fds(self) -> bool:
        try:
            return os.stat(f"{self._root}/self/fd").st_size > 0
        except OSError:
            return False

    def _fd_count(self, base: str) -> int:
        """Open fds of a process (-1 on kernels older than 6.2, which report 0 here)."""
        return os.stat(f"{base}/fd").st_size if self._fd_counts else -1

    def _user(self, uid: int | None) -> str:
        if uid is None:
            return ""
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def _own_netns(self) -> int | None:
        return netns_inode(f"{self._root}/self")

    def _process(
        self,
        p: _Live,
        cgroup: str,
        sockets: tuple[Socket, ...],
        blind: tuple[UnfilterableSocket, ...] = (),
        rates: tuple[float, float] | None = None,
    ) -> Process:
        s = p.static
        return Process(
            pid=p.pid,
            ppid=p.stat.ppid,
            name=s.name,
            exe=s.exe,
            cmdline=s.cmdline,
            user=s.user,
            uid=s.uid,
            gid=s.gid,
            start_time=p.stat.start_time,
            cgroup=cgroup,
            netns=p.netns,
            state=process_state(p.stat.state),
            sockets=sockets,
            kernel_thread=p.stat.kernel_thread,
            unfilterable=blind,
            unit=systemd_units.unit_of(cgroup),
            send_rate=rates[0] if rates else None,
            recv_rate=rates[1] if rates else None,
        )

    # ---- sockets -----------------------------------------------------------------------

    def _read_tables(
        self, live: list[_Live], denied: dict[str, int]
    ) -> tuple[dict[int, Socket], dict[int, list[Socket]], dict[int, UnfilterableSocket]]:
        """inode -> Socket over every namespace we can see, each namespace's sockets, and
        inode -> the packet sockets of every namespace (netfilter never sees those)."""
        by_netns: dict[int, list[int]] = {}
        for p in live:
            if p.netns is not None:
                by_netns.setdefault(p.netns, []).append(p.pid)
        table, per_netns, unreadable = self._tables.refresh(by_netns)
        if unreadable:
            denied["socket tables"] = unreadable
        own = self._own_netns()
        packets: dict[int, UnfilterableSocket] = {}
        for netns, pids in by_netns.items():
            for pid in pids:  # through the first process of the namespace still there
                found = self._packets_of(f"{self._root}/{pid}", netns == own)
                if found is not None:
                    packets.update(found)
                    break
        return table, per_netns, packets

    @staticmethod
    def _packets_of(base: str, own: bool) -> dict[int, UnfilterableSocket] | None:
        try:
            return read_packet_table(base, own)
        except OSError:
            return None  # gone, or its namespace is not ours to read

    def _scan_fds(self, base: str) -> tuple[int, ...] | None:
        """Socket inodes held by one process (ascending); None when its fds may not be listed."""
        try:
            inodes = socket_inodes(f"{base}/fd")
        except PermissionError:
            return None
        except _GONE as exc:
            raise _Gone from exc
        inodes.sort()
        return tuple(inodes)

    def _resolve_owners(
        self, live: list[_Live], table: dict[int, Socket], per_netns: dict[int, list[Socket]]
    ) -> dict[Key, _Fds]:
        """Socket inodes per process, rescanning only what may have changed."""
        old = self._fds
        fds: dict[Key, _Fds] = {}
        unscanned: list[_Live] = []
        for p in live:
            if p.fd_count is None:
                continue
            cached = old.get(p.key)
            if cached is not None and cached.count == p.fd_count:
                fds[p.key] = cached
                if cached.inodes is not None:  # denied stays denied until its fds change
                    unscanned.append(p)
                continue
            self._scan_into(p, fds)

        missing = set(table)
        for f in fds.values():
            if f.inodes:
                missing.difference_update(f.inodes)
        self._unowned &= missing  # forget what was closed
        missing -= self._unowned
        if missing and unscanned:
            for p in _search_order(unscanned, fds, table, per_netns, missing):
                found = self._scan_into(p, fds)
                if found is not None and found.inodes:
                    missing.difference_update(found.inodes)
                    if not missing:
                        break
        self._unowned |= missing
        self._fds = fds
        return fds

    def _scan_into(self, p: _Live, fds: dict[Key, _Fds]) -> _Fds | None:
        try:
            inodes = self._scan_fds(f"{self._root}/{p.pid}")
        except _Gone:
            fds.pop(p.key, None)
            return None
        f = _Fds(p.fd_count if p.fd_count is not None else -1, inodes)
        fds[p.key] = f
        return f


class _Rates:
    """A socket seen last time moved by the difference of its counters; one new since then by
    all of its counters (it was opened meanwhile). A socket closed between two refreshes takes
    its last bytes with it. A socket several processes hold counts for each of them."""

    __slots__ = ("_moved", "_now", "_seconds")

    def __init__(self, now: dict[int, Traffic], last: dict[int, Traffic], seconds: float) -> None:
        self._now, self._seconds = now, seconds
        # Most sockets sit idle between two refreshes: a set difference (at C speed) finds the
        # few whose counters moved (or that are new), and only those are worked out.
        moved: dict[int, Traffic] = {}
        for inode, (acked, got) in now.items() - last.items():
            before = last.get(inode)
            if before is None:
                moved[inode] = (acked, got)
            else:  # never negative: an inode reused by a new socket restarts from 0
                moved[inode] = (max(acked - before[0], 0), max(got - before[1], 0))
        self._moved = moved

    def of(self, inodes: tuple[int, ...]) -> tuple[float, float] | None:
        """(sent, received) bytes per second of these sockets; None if none is counted."""
        if self._now.keys().isdisjoint(inodes):  # no TCP socket read over sock_diag
            return None
        sent = received = 0
        moved = self._moved
        if moved:
            for inode in filter(moved.__contains__, inodes):
                acked, got = moved[inode]
                sent += acked
                received += got
        return sent / self._seconds, received / self._seconds


def _search_order(
    candidates: list[_Live],
    fds: dict[Key, _Fds],
    table: dict[int, Socket],
    per_netns: dict[int, list[Socket]],
    missing: set[int],
) -> Iterable[_Live]:
    """Processes most likely to hold new sockets first: inet socket owners in the namespaces
    where the new sockets are, then the other socket owners, then everyone else."""
    wanted_netns = {ns for ns, socks in per_netns.items() if any(s.inode in missing for s in socks)}

    def rank(p: _Live) -> int:
        f = fds.get(p.key)
        owns = f is not None and f.inodes is not None and any(i in table for i in f.inodes)
        here = p.netns in wanted_netns
        return (0 if owns else 2) + (0 if here else 1)

    return sorted(candidates, key=rank)


def _count(denied: dict[str, int], what: str) -> None:
    denied[what] = denied.get(what, 0) + 1


_DENIED_TEXT = {
    "fds": "fds of {n} {processes}: permission denied (sockets not attributed)",
    "owners": "owners of {n} {sockets}: not visible (held by processes whose fds are denied)",
    "netns": "netns of {n} {processes}: permission denied",
    "exe": "exe of {n} {processes}: permission denied",
    "cgroup": "cgroup of {n} {processes}: permission denied",
    "status": "{n} {processes}: permission denied",
    "socket tables": "socket tables of {n} network {namespaces}: not readable",
}


def _denied_lines(denied: dict[str, int]) -> tuple[str, ...]:
    def plural(word: str, n: int) -> str:
        return word if n != 1 else {"processes": "process", "namespaces": "namespace"}.get(word, word[:-1])

    return tuple(
        _DENIED_TEXT[k].format(
            n=n,
            processes=plural("processes", n),
            sockets=plural("sockets", n),
            namespaces=plural("namespaces", n),
        )
        for k, n in denied.items()
        if n
    )
