"""inet socket tables, once per network namespace, reusing decoded Sockets across refreshes.

A namespace is read through one of its processes: /proc/<pid>/net/{tcp,tcp6,udp,udp6} shows
that process's namespace (no setns). Our own namespace is dumped over NETLINK_SOCK_DIAG instead,
4x cheaper (see sockdiag), and as root so is any other one with TCP sockets, through a netlink
socket opened in it by a throwaway thread. /proc/<pid>/net/sockstat says which tables hold
anything at all, so empty ones are skipped (an empty /proc/net/tcp still walks the whole TCP
hash: ~3 ms here). Any refusal from the kernel falls back to /proc for good.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from operator import attrgetter

from netjail.backends import sockdiag
from netjail.backends.model import Socket
from netjail.backends.procfs import LineKey, iter_net_table, parse_sockstat_inuse, table_kind
from netjail.backends.procio import read_all, read_small

TABLES = ("tcp", "tcp6", "udp", "udp6")
_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_GONE = (FileNotFoundError, ProcessLookupError)
_inode = attrgetter("inode")


def thread_netns() -> int | None:
    """The namespace a netlink socket opened now would see (the calling thread's)."""
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


class SocketTables:
    def __init__(self, proc_root: str = "/proc", netlink: bool = True) -> None:
        """netlink=False reads every namespace through /proc (the fallback, kept testable)."""
        self._root = proc_root
        self._lines: dict[LineKey, Socket] = {}
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
        lines: dict[LineKey, Socket] = {}
        table: dict[int, Socket] = {}
        per_netns: dict[int, list[Socket]] = {}
        unreadable = 0
        own = thread_netns() if self._netlink else None
        for netns, pids in by_netns.items():
            sockets: list[Socket] | None = None
            for pid in pids:
                try:
                    sockets = self._read(f"{self._root}/{pid}", netns == own, lines, self._dumps)
                    break
                except (*_GONE, PermissionError):
                    continue  # exited (or a zombie: no namespace any more)
            if sockets is None:
                unreadable += 1
                continue
            per_netns[netns] = sockets
            table.update(zip(map(_inode, sockets), sockets, strict=True))
        self._lines = lines  # only what is still alive
        self._dumps.rotate()
        if len(self._addrs) > sockdiag.DumpCache.MAX_ADDRS:
            self._addrs.clear()
        return table, per_netns, unreadable

    def of_process(self, pid: int) -> list[Socket]:
        """The sockets of one process's namespace, read fresh."""
        base = f"{self._root}/{pid}"
        own = self._netlink and _ns_ino(base) == thread_netns()
        return self._read(base, own, {}, sockdiag.DumpCache())

    def _read(
        self, base: str, own: bool, lines: dict[LineKey, Socket], dumps: sockdiag.DumpCache
    ) -> list[Socket]:
        present = self._present(base)
        if not present:
            return []
        # Another namespace is entered (a thread's setns) only when it has TCP sockets: an
        # /proc/net/tcp read walks the whole TCP hash (~3 ms even nearly empty), while a
        # small UDP table reads faster than a thread can start.
        foreign_tcp = self._setns and ("tcp" in present or "tcp6" in present)
        if self._netlink and (own or foreign_tcp):
            try:
                with sockdiag.open_socket(None if own else f"{base}/ns/net") as nl:
                    wanted = [(_AF[table_kind(name)[0]], table_kind(name)[1]) for name in present]
                    dumped: list[Socket] = sockdiag.dump(nl, wanted, dumps)
                return dumped
            except sockdiag.Unavailable:
                if own:
                    self._netlink = False  # no inet_diag/udp_diag here: /proc from now on
                else:
                    self._setns = False  # not allowed to enter namespaces: /proc for those
        sockets: list[Socket] = []
        for name in present:
            family, proto = table_kind(name)
            text = read_all(f"{base}/net/{name}").decode("ascii", "replace")
            sockets.extend(
                iter_net_table(
                    text, family, proto, owned_only=True, cache=self._lines, keep=lines, addrs=self._addrs
                )
            )
        return sockets

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


def _ns_ino(base: str) -> int | None:
    try:
        return os.stat(f"{base}/ns/net").st_ino
    except OSError:
        return None
