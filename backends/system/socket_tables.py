"""inet socket tables, once per network namespace, reusing decoded Sockets across refreshes.

A namespace is read through one of its processes: /proc/<pid>/net/{tcp,tcp6,udp,udp6} shows
that process's namespace (no setns). Our own namespace is dumped over NETLINK_SOCK_DIAG instead,
4x cheaper (see sockdiag), and as root so is any other one with TCP sockets, through netlink
sockets opened inside them by one throwaway thread. /proc/<pid>/net/sockstat says which tables
hold anything at all, so empty ones are skipped (an empty /proc/net/tcp still walks the whole
TCP hash: ~3 ms here, docs/kernel-facts.md #20). A refusal from the kernel falls back to /proc for good.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from operator import attrgetter

from netjail.backends.model import Socket
from netjail.backends.system import sockdiag
from netjail.backends.system.procfs import LineKey, iter_net_table, parse_sockstat_inuse, table_kind
from netjail.backends.system.procio import netns_inode, read_all, read_small

TABLES = ("tcp", "tcp6", "udp", "udp6")
_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)  # left, or a zombie by now
_inode = attrgetter("inode")


def thread_netns() -> int | None:
    """The namespace a netlink socket opened now would see (the calling thread's)."""
    return netns_inode("/proc/thread-self")


class SocketTables:
    def __init__(self, proc_root: str = "/proc", netlink: bool = True, traffic: bool = False) -> None:
        """netlink=False reads every namespace through /proc (the fallback, kept testable).
        traffic=True: each refresh also keeps the byte counts of the TCP sockets it dumped over
        sock_diag in `traffic` (namespaces read through /proc have none)."""
        self._root = proc_root
        self._count_traffic = traffic
        self.traffic: dict[int, sockdiag.Traffic] = {}  # inode -> (acked, received), last refresh
        self._lines: dict[LineKey, Socket] = {}  # /proc lines decoded by the last refresh
        self._dumps = sockdiag.DumpCache()
        self._addrs: dict[str, str] = {}
        self._netlink = netlink  # until the kernel refuses a dump
        self._setns = netlink and os.geteuid() == 0  # other namespaces too, until refused

    @property
    def enters_namespaces(self) -> bool:
        """True while other namespaces are read over setns + sock_diag (root, not refused)."""
        return self._netlink and self._setns

    def refresh(
        self, by_netns: Mapping[int, Sequence[int]]
    ) -> tuple[dict[int, Socket], dict[int, list[Socket]], int]:
        """(inode -> Socket, netns -> its sockets, namespaces that could not be read) for the
        given namespaces, each read through the first of its processes still there."""
        keep: dict[LineKey, Socket] = {}
        self.traffic = {}
        per_netns = self._read_namespaces(
            by_netns, keep, self._dumps, self.traffic if self._count_traffic else None
        )
        self._lines = keep  # only what is still alive
        self._dumps.rotate()
        if len(self._addrs) > sockdiag.DumpCache.MAX_ADDRS:
            self._addrs.clear()
        table: dict[int, Socket] = {}
        for sockets in per_netns.values():
            table.update(zip(map(_inode, sockets), sockets, strict=True))
        return table, per_netns, len(by_netns) - len(per_netns)

    def of_process(self, pid: int) -> list[Socket]:
        """The sockets of one process's namespace, read fresh (no cache kept)."""
        netns = netns_inode(f"{self._root}/{pid}") or 0
        got = self._read_namespaces({netns: [pid]}, {}, sockdiag.DumpCache())
        if netns not in got:
            raise FileNotFoundError(f"{self._root}/{pid}")  # the process left meanwhile
        return got[netns]

    def _read_namespaces(
        self,
        by_netns: Mapping[int, Sequence[int]],
        keep: dict[LineKey, Socket],
        dumps: sockdiag.DumpCache,
        traffic: dict[int, sockdiag.Traffic] | None = None,
    ) -> dict[int, list[Socket]]:
        own = thread_netns() if self._netlink else None
        out: dict[int, list[Socket]] = {}
        to_enter: list[tuple[int, str, list[str]]] = []
        for netns, pids in by_netns.items():
            probed = self._probe(pids)
            if probed is None:
                continue
            base, present = probed
            got: list[Socket] | None = None
            if not present:
                got = []
            elif netns == own:
                got = self._dump_own(present, dumps, traffic)
            elif self._setns and ("tcp" in present or "tcp6" in present):
                # Only TCP makes entering worth it: a small UDP table reads faster from /proc
                # than a thread can enter a namespace.
                to_enter.append((netns, base, present))
                continue
            if got is None:
                got = self._read_proc(pids, present, keep)
            if got is not None:
                out[netns] = got
        if to_enter:
            opened = sockdiag.open_sockets_in([f"{base}/ns/net" for _, base, _ in to_enter])
            for (netns, _, present), nl in zip(to_enter, opened, strict=True):
                got = self._dump_entered(nl, present, dumps, traffic)
                if got is None:
                    got = self._read_proc(by_netns[netns], present, keep)
                if got is not None:
                    out[netns] = got
        return out

    def _probe(self, pids: Sequence[int]) -> tuple[str, list[str]] | None:
        """(/proc/PID of the first process still there, the tables its namespace fills)."""
        for pid in pids:
            base = f"{self._root}/{pid}"
            try:
                return base, self._present(base)
            except _GONE:
                continue
        return None

    def _dump_own(
        self, present: list[str], dumps: sockdiag.DumpCache, traffic: dict[int, sockdiag.Traffic] | None
    ) -> list[Socket] | None:
        try:
            with sockdiag.open_socket() as nl:
                dumped: list[Socket] = sockdiag.dump(nl, _wanted(present), dumps, traffic)
                return dumped
        except sockdiag.Unavailable:
            self._netlink = False  # no inet_diag/udp_diag here: /proc from now on
            return None

    def _dump_entered(
        self,
        nl: socket.socket | Exception,
        present: list[str],
        dumps: sockdiag.DumpCache,
        traffic: dict[int, sockdiag.Traffic] | None,
    ) -> list[Socket] | None:
        if isinstance(nl, sockdiag.Unavailable):
            self._setns = False  # not allowed to enter namespaces: /proc for those
        if isinstance(nl, Exception):
            return None  # (or that process left: /proc through another one)
        with nl:
            try:
                dumped: list[Socket] = sockdiag.dump(nl, _wanted(present), dumps, traffic)
                return dumped
            except sockdiag.Unavailable:
                self._setns = False
                return None

    def _read_proc(
        self, pids: Sequence[int], present: list[str], keep: dict[LineKey, Socket]
    ) -> list[Socket] | None:
        for pid in pids:
            base = f"{self._root}/{pid}"
            try:
                texts = [
                    (name, read_all(f"{base}/net/{name}").decode("ascii", "replace")) for name in present
                ]
            except _GONE:
                continue
            sockets: list[Socket] = []
            for name, text in texts:
                family, proto = table_kind(name)
                sockets.extend(
                    iter_net_table(
                        text, family, proto, owned_only=True, cache=self._lines, keep=keep, addrs=self._addrs
                    )
                )
            return sockets
        return None

    @staticmethod
    def _present(base: str) -> list[str]:
        """The tables of this namespace with at least one socket (all four if unsure)."""
        counts = parse_sockstat_inuse(read_small(f"{base}/net/sockstat").decode())
        try:
            counts.update(parse_sockstat_inuse(read_small(f"{base}/net/sockstat6").decode()))
        except FileNotFoundError:
            if not os.path.exists(f"{base}/net/sockstat"):
                raise  # the process went away, not IPv6
            counts.setdefault("tcp6", 0)  # IPv6 disabled in this kernel
            counts.setdefault("udp6", 0)
        return [name for name in TABLES if counts.get(name, 1) > 0]


def _wanted(present: list[str]) -> list[tuple[int, str]]:
    return [(_AF[table_kind(name)[0]], table_kind(name)[1]) for name in present]
