"""Who else holds a socket: the fd tables of a blocked process's relatives, for given inodes.

A socket inherited across fork (a pre-fork server's listener, in the master and every worker)
or handed down by a service manager (systemd socket activation) is one socket in several fd
tables. Its jail mark is the socket's, so blocking one holder cuts that socket for all of them:
a block says so rather than doing it silently. The kernel does not say how many fd tables hold
a file, so the only way to know is to look at /proc/PID/fd links (~7 us each). The whole
machine's tables cost what every process holds (a busy database's thousands of connections on
every block), so only the family is read: whoever can have inherited the socket or handed it
down. A socket passed to an unrelated process over a unix socket is not found (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from netjail.backends.system import identity
from netjail.backends.system.procio import socket_inodes

Holder = tuple[int, int, str]  # pid, start time, name


def relatives(pids: Iterable[int], proc_root: str = "/proc") -> list[int]:
    """Processes that can share a socket with these by fork: their ancestors (a master, a
    service manager), their parents' other descendants (the other workers) and their own.
    Under PID 1 the siblings are every daemon of the machine, unrelated: left out."""
    out: dict[int, None] = {}
    for pid in pids:
        chain = identity.ancestors(pid)
        out.update(dict.fromkeys(chain[1:]))
        parent = chain[1] if len(chain) > 1 else 1
        out.update(dict.fromkeys(identity.descendants(parent if parent > 1 else pid, proc_root)))
    return list(out)


def holders(
    inodes: Collection[int], candidates: Iterable[int], skip: Collection[int], proc_root: str = "/proc"
) -> dict[int, list[Holder]]:
    """inode -> the candidate processes (outside `skip`) whose main fd table holds it. Threads
    with fd tables of their own are not looked at: a fork-inherited socket is in the main one."""
    if not inodes:
        return {}
    wanted = set(inodes)
    found: dict[int, list[Holder]] = {}
    for pid in dict.fromkeys(candidates):
        if pid in skip:
            continue
        try:
            held = wanted.intersection(socket_inodes(f"{proc_root}/{pid}/fd"))
        except OSError:
            continue  # a kernel thread, gone, or not ours to read
        if not held:
            continue
        stat = identity.read_stat(pid, proc_root)
        if stat is None:
            continue
        for inode in held:
            found.setdefault(inode, []).append((pid, stat.start_time, stat.name))
    return found
