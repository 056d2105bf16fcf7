"""Process identity and the safety rules applied before netjail touches a process.

A PID is not an identity: members are (pid, start time) and are re-checked immediately before
every action, so a PID the kernel reused for another program is never jailed by mistake.
"""

from __future__ import annotations

import os
from pathlib import Path

from netjail.backends.errors import NoSuchProcess, ProtectedProcess
from netjail.backends.system.procfs import ProcStat, parse_stat


def read_stat(pid: int, proc_root: str = "/proc") -> ProcStat | None:
    try:  # comm holds whatever bytes the process chose: not a reason to think it gone
        return parse_stat(Path(f"{proc_root}/{pid}/stat").read_text(errors="surrogateescape"))
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def current(pid: int, start_time: int | None = None) -> ProcStat:
    """The live process behind pid, refusing a vanished PID or one that now names another process."""
    if pid <= 0:
        raise NoSuchProcess(f"no such process: {pid}")
    stat = read_stat(pid)
    if stat is None:
        raise NoSuchProcess(f"no such process: {pid}")
    if start_time is not None and stat.start_time != start_time:
        raise NoSuchProcess(
            f"PID {pid} now belongs to another process ({stat.name}, started later): refusing"
        )
    return stat


def ancestors(pid: int | None = None) -> list[int]:
    """pid (default: ourselves) and every ancestor up to PID 1."""
    chain: list[int] = []
    cur: int | None = os.getpid() if pid is None else pid
    while cur and cur not in chain:
        chain.append(cur)
        stat = read_stat(cur)
        cur = stat.ppid if stat else None
    return chain


# Remote-login servers: blocking one cuts every session it serves, the operator's own included
# even when netjail runs inside tmux or screen, where the session is no ancestor of netjail.
REMOTE_LOGIN = frozenset({"sshd", "dropbear", "mosh-server"})


def serves_remote_logins(stat: ProcStat) -> bool:
    """Named like a remote-login server and running one: comm is the process's to choose
    (prctl), so the program it runs must be a root-owned file of that name too (a user's
    python named "sshd" made every block of it refuse). Unreadable: kept protected."""
    if stat.name not in REMOTE_LOGIN:
        return False
    exe = f"/proc/{stat.pid}/exe"
    try:
        st, target = os.stat(exe), os.readlink(exe)
    except OSError:
        return True
    name = os.path.basename(target.removesuffix(" (deleted)"))  # an upgraded, still running sshd
    return name in REMOTE_LOGIN and st.st_uid == 0 and not st.st_mode & 0o022


def refuse_protected(stat: ProcStat, protected: set[int] | None = None) -> None:
    """PID 1, kernel threads, netjail itself, its ancestors and remote-login servers are off
    limits (unless --force)."""
    own = set(ancestors()) if protected is None else protected
    if stat.pid == 1:
        raise ProtectedProcess(f"refusing to block PID 1 ({stat.name}): use --force if you mean it")
    if stat.kernel_thread:
        raise ProtectedProcess(f"refusing to block kernel thread {stat.pid} ({stat.name}): it has no sockets")
    if stat.pid == os.getpid():
        raise ProtectedProcess(f"refusing to block netjail itself (PID {stat.pid})")
    if stat.pid in own:
        raise ProtectedProcess(
            f"refusing to block PID {stat.pid} ({stat.name}): it is an ancestor of netjail "
            "(your shell or session); use --force if you mean it"
        )
    if serves_remote_logins(stat):
        raise ProtectedProcess(
            f"refusing to block PID {stat.pid} ({stat.name}): it serves remote logins, yours "
            "perhaps; use --force if you mean it"
        )


def children_map(proc_root: str = "/proc") -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir(proc_root):
        if entry.name.isdigit() and (stat := read_stat(int(entry.name), proc_root)):
            kids.setdefault(stat.ppid, []).append(stat.pid)
    return kids


def _children(pid: int, proc_root: str) -> list[int] | None:
    """pid's children from /proc/PID/task/*/children (CONFIG_PROC_CHILDREN): no system-wide
    scan. None when the kernel lacks those files."""
    try:
        tasks = os.listdir(f"{proc_root}/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"{proc_root}/{pid}/task/{tid}/children") as f:
                kids += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"{proc_root}/{pid}/task/{tid}"):
                continue  # the thread exited
            return None
        except OSError:
            return None
    return kids


def descendants(pid: int, proc_root: str = "/proc") -> list[int]:
    """Every current descendant of pid (not pid itself), parents before children."""
    first = _children(pid, proc_root)  # the tree itself when the kernel lists children
    kids = children_map(proc_root) if first is None else {pid: first}

    def children_of(p: int) -> list[int]:
        if p in kids:
            return kids[p]
        return _children(p, proc_root) or [] if first is not None else []

    out: list[int] = []
    todo = list(children_of(pid))
    while todo:
        child = todo.pop(0)
        if child not in out:
            out.append(child)
            todo.extend(children_of(child))
    return out
