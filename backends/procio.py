"""Reading /proc files with os-level calls: per-file cost matters when every process is visited
on every refresh, and a buffered file object costs more than the read itself."""

from __future__ import annotations

import os

_O_READ = os.O_RDONLY | os.O_CLOEXEC


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
