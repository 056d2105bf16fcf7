"""Which threads of a process hold fd tables of their own.

A process's sockets are not only in /proc/PID/fd (docs/kernel-facts.md #21): a thread made with
clone() without
CLONE_FILES, or one that called unshare(CLONE_FILES), has a table of its own, and a leader that
called pthread_exit is a zombie with an empty table while its threads go on. Each distinct
table is reached through one of its threads (/proc/PID/task/TID/fd, and pidfd_getfd on a
PIDFD_THREAD pidfd). kcmp(KCMP_FILES) says whether two tasks share one table (docs/security.md
§7: sockets behind another thread's table got out of a block before this).
"""

from __future__ import annotations

import ctypes
import os

KCMP_FILES = 2
PIDFD_THREAD = os.O_EXCL  # pidfd_open flag (Linux >= 6.9): a pidfd for one thread
_KCMP = {"x86_64": 312, "aarch64": 272, "i686": 349, "armv7l": 378, "ppc64le": 354, "s390x": 343}
_libc = ctypes.CDLL(None, use_errno=True)


def _same_table(pid: int, a: int, b: int) -> bool:
    """True only when the kernel says tasks a and b share one fd table."""
    nr = _KCMP.get(os.uname().machine)  # what platform.machine() reads (its import: ~2 ms)
    if nr is None:
        return False
    return int(_libc.syscall(nr, ctypes.c_long(a), ctypes.c_long(b), KCMP_FILES, 0, 0)) == 0


def table_holders(pid: int) -> list[int]:
    """One task id per distinct fd table of process pid, the leader's first when it has one.
    Threads whose table cannot be compared count as distinct (read twice rather than never)."""
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except (OSError, ValueError):
        return [pid]
    holders: list[int] = []
    for tid in [pid, *(t for t in tids if t != pid)]:
        if not any(_same_table(pid, tid, h) for h in holders):
            holders.append(tid)
    return holders


def fd_dir(pid: int, tid: int) -> str:
    return f"/proc/{pid}/fd" if tid == pid else f"/proc/{pid}/task/{tid}/fd"


def open_pidfd(pid: int, tid: int) -> int:
    """A pidfd for the task holding the table: the process's for the leader, a thread pidfd
    otherwise (OSError when the kernel has no PIDFD_THREAD)."""
    return os.pidfd_open(pid) if tid == pid else os.pidfd_open(tid, PIDFD_THREAD)
