"""Which systemd unit a process belongs to, read from its cgroup path (no D-Bus).

systemd names every cgroup it manages after a unit: slices (`*.slice`) hold services
(`*.service`) and scopes (`*.scope`: login sessions `session-3.scope`, desktop apps
`app-firefox-1234.scope`, `systemd-run --scope`). A process's unit is the innermost service or
scope on its path; below it may follow cgroups the unit made itself (Delegate=).

A process moved out of that cgroup is no longer the unit's: `systemctl stop` kills what is in
the unit's cgroup and nothing else, so netjail never takes a process out of it. Its jail
lives inside the process's own cgroup instead (jail_cgroups.place), which systemd lists under
the unit, kills with it and removes with it (docs/kernel-facts.md #13).

The names are only trusted when systemd runs the machine (`/run/systemd/system`, what
sd_booted(3) checks): elsewhere a cgroup called `x.service` is just a name.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

UNIT_SUFFIXES = (".service", ".scope")
BOOTED_MARK = "/run/systemd/system"
DELEGATE_XATTR = "trusted.delegate"  # systemd >= 251 marks delegated cgroups with it
_JAIL_DIR = re.compile(r"(?:[^/]*-)?net-[0-9]+")  # jail_cgroups.unit_dir_name()


@cache
def managed() -> bool:
    """True when systemd is the service manager of this machine (sd_booted)."""
    return os.path.isdir(BOOTED_MARK)


def unit_cgroup(cgroup: str) -> str | None:
    """The cgroup of the innermost service or scope on a cgroup2 path, None when there is none
    ("/system.slice/nginx.service/sub" -> "/system.slice/nginx.service")."""
    parts = cgroup.strip("/").split("/")
    # below a jail directory inside a unit, names are netjail's (a jail may be called x.service)
    cut = next((i for i, p in enumerate(parts) if _JAIL_DIR.fullmatch(p)), len(parts))
    for i in range(cut - 1, -1, -1):
        if parts[i].endswith(UNIT_SUFFIXES) and len(parts[i]) > len(".scope"):
            return "/" + "/".join(parts[: i + 1])
    return None


def unit_name(cgroup: str) -> str | None:
    """The unit of a cgroup2 path ("nginx.service", "session-3.scope"), None when not in one."""
    found = unit_cgroup(cgroup)
    return found.rsplit("/", 1)[-1] if found else None


def unit_of(cgroup: str) -> str | None:
    """unit_name() when systemd manages the machine, else None."""
    return unit_name(cgroup) if cgroup and managed() else None


def cgroup_type(mount: Path, cgroup: str) -> str:
    """A cgroup's `cgroup.type` ("domain" when the file is missing: the root, or it is gone)."""
    try:
        return (mount / cgroup.lstrip("/") / "cgroup.type").read_text().strip()
    except OSError:
        return "domain"


def delegated(mount: Path, cgroup: str) -> bool:
    """Whether systemd delegated this cgroup to its unit (Delegate=yes)."""
    try:
        return os.getxattr(mount / cgroup.lstrip("/"), DELEGATE_XATTR) in (b"1", b"1\0")
    except OSError:
        return False


def delegated_units(mount: Path, limit: int = 10_000) -> list[str]:
    """Units of the tree systemd delegated (a walk of at most `limit` cgroups)."""
    found = []
    for seen, (top, dirs, _files) in enumerate(os.walk(mount)):
        if seen >= limit:
            break
        rel = "/" + os.path.relpath(top, mount).lstrip(".")
        if rel != "/" and rel.endswith(UNIT_SUFFIXES) and delegated(mount, rel):
            found.append(rel.rsplit("/", 1)[-1])
            dirs.clear()  # what the unit made below is its own business
    return found
