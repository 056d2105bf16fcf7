"""Who else holds a socket: one pass over the other processes' fd tables, for given inodes.

A socket inherited across fork (a pre-fork server's listener, in the master and every worker)
or passed over a unix socket is one socket in several fd tables. Its jail mark is the
socket's, so blocking one holder cuts that socket for all of them: a block says so rather
than doing it silently. The kernel does not tell how many fd tables hold a file, so the only
way to know is to look: every process's /proc/PID/fd links (bytes, no decoding), compared as
integers against the few inodes asked about. Measured here: ~7 µs per fd link.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from netjail.backends import identity
from netjail.backends.procio import socket_inodes

Holder = tuple[int, int, str]  # pid, start time, name


def holders(
    inodes: Collection[int], skip: Collection[int], proc_root: str = "/proc"
) -> dict[int, list[Holder]]:
    """inode -> the processes (outside `skip`) whose main fd table holds it. Threads with fd
    tables of their own are not looked at: a fork-inherited socket is in the main table."""
    if not inodes:
        return {}
    wanted = set(inodes)
    found: dict[int, list[Holder]] = {}
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in skip:
            continue
        try:
            held = wanted.intersection(socket_inodes(f"{proc_root}/{name}/fd"))
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
