"""Reading /proc files with os-level calls: per-file cost matters when every process is visited
on every refresh, and a buffered file object costs more than the read itself."""

from __future__ import annotations

import os
import select

_O_READ = os.O_RDONLY | os.O_CLOEXEC


def netns_inode(task: str = "/proc/self") -> int | None:
    """The inode of a task's network namespace (the number /proc/PID/ns/net names, one per
    namespace), None when it cannot be read. `task`: /proc/PID, /proc/thread-self, ..."""
    try:
        return os.stat(f"{task}/ns/net").st_ino
    except OSError:
        return None


def read_small(path: str) -> bytes:
    """A small /proc file in one read(): stat, status, cgroup, sockstat are generated whole."""
    fd = os.open(path, _O_READ)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def read_all(path: str) -> bytes:
    """A file of any length. seq_file tables (/proc/net/tcp) hand out about a page per read()
    however much is asked for, so only an empty read means the end."""
    fd = os.open(path, _O_READ)
    try:
        parts = []
        while chunk := os.read(fd, 1 << 18):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def socket_inodes(fd_dir: str) -> list[int]:
    """Socket inodes of the fds listed in `fd_dir` (/proc/PID/fd or a thread's), in directory
    order. Bytes names and links: no decoding of thousands of links that are mostly dropped.
    An fd closed meanwhile is skipped; OSError when the directory cannot be read."""
    dfd = os.open(fd_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        inodes = []
        readlink = os.readlink
        for fd in os.listdir(fd_dir.encode()):
            try:
                link = readlink(fd, dir_fd=dfd)
            except OSError:
                continue  # closed meanwhile
            if link[:8] == b"socket:[":
                inodes.append(int(link[8:-1]))
        return inodes
    finally:
        os.close(dfd)


def pidfd_exited(pidfd: int, timeout: float = 0.0) -> bool:
    """Whether the process behind `pidfd` exited, waiting up to `timeout` seconds. poll, not
    select: select() cannot take an fd numbered 1024 or above, and a process holding many
    sockets' duplicates gets there."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))
