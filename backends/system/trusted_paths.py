"""Whether a file or directory can be trusted by root: only root (or the user netjail runs as)
may be able to change it or any directory above it, like OpenSSH's StrictModes.

A directory writable by others lets them rename or replace what is inside it, unless it is
sticky (/tmp): then they can only remove their own entries.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection


def trusted_owners() -> frozenset[int]:
    """Root always; the effective user too (a non-root netjail may trust its own files)."""
    return frozenset({0, os.geteuid()})


def stat_problem(
    st: os.stat_result, owners: Collection[int] | None = None, *, sticky_ok: bool = False
) -> str | None:
    """Why an object with this stat is not trusted (None when it is)."""
    owners = trusted_owners() if owners is None else owners
    if st.st_uid not in owners:
        return f"owned by uid {st.st_uid} (must be {' or '.join(map(str, sorted(owners)))})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        who = "others" if st.st_mode & stat.S_IWOTH else "its group"
        return f"writable by {who} (mode {st.st_mode & 0o7777:04o})"
    return None


def path_problem(path: str, owners: Collection[int] | None = None) -> str | None:
    """Why `path` (symlinks resolved) is not trusted: the object itself, then every directory
    above it (sticky ones allowed). None when all are trusted."""
    real = os.path.realpath(path)
    try:
        own = stat_problem(os.stat(real), owners)
        if own:
            return f"{real} is {own}"
        parent = os.path.dirname(real)
        while True:
            problem = stat_problem(os.stat(parent), owners, sticky_ok=True)
            if problem:
                return f"{parent} is {problem}"
            if parent == "/":
                return None
            parent = os.path.dirname(parent)
    except OSError as exc:
        return f"{real}: {exc.strerror}"
