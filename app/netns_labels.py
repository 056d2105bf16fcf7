"""Which network namespace a process is in, as a person would name it.

`ip netns` keeps a named namespace as a bind mount under /run/netns: stat() of that file gives
the namespace's inode, the same number /proc/PID/ns/net shows. netjail's netns jails are named
there too, so a jailed command's row says which jail's namespace it runs in. Namespaces without
a name are shown the way the kernel writes them, `net:[INODE]`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

NETNS_RUN_DIR = Path("/run/netns")


def named_netns(run_dir: Path = NETNS_RUN_DIR) -> dict[int, str]:
    """Namespace inode -> its `ip netns` name (one stat per name: called from the poll worker)."""
    try:
        names = os.listdir(run_dir)
    except OSError:
        return {}
    found: dict[int, str] = {}
    for name in sorted(names):
        try:
            found.setdefault(os.stat(run_dir / name).st_ino, name)
        except OSError:
            continue  # removed meanwhile, or a mount we may not look at
    return found


def netns_label(netns: int | None, own_netns: int | None, names: Mapping[int, str]) -> str:
    """ "" for netjail's own namespace (and when unknown), else the name or `net:[INODE]`."""
    if netns is None or netns == own_netns:
        return ""
    if own_netns is None:  # cannot tell which are others: name only the named ones
        return names.get(netns, "")
    return names.get(netns) or f"net:[{netns}]"
