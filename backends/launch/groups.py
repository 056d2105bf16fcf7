"""Jail groups for the gid-owner strategy: a system group `netjail-<jail>` per jail.

A command launched with the group as its primary gid opens sockets whose owner gid is the
group's, which `-m owner --gid-owner` matches. Groups are machine-wide (/etc/group, not per
network namespace): remove only groups netjail created, which is why `ensure_group` says whether
it created one. groupadd/groupdel (passwd package) are used rather than editing /etc/group, so
their locking, /etc/gshadow and nscd invalidation come for free.
"""

from __future__ import annotations

import grp
import os
import subprocess

from netjail.backends.errors import BadInput, InsufficientPrivilege, OperationFailed
from netjail.backends.jails.names import check_jail_name
from netjail.backends.system import tools

GROUP_PREFIX = "netjail-"
GROUPADD_NAME_IN_USE = 9  # groupadd(8) exit codes
GROUPDEL_NO_SUCH_GROUP = 6
GROUPDEL_PRIMARY_GROUP = 8


def group_name(jail: str) -> str:
    return GROUP_PREFIX + check_jail_name(jail)


def group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _tool(name: str) -> str:
    return tools.require(name, "passwd")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OperationFailed(f"{argv[0]} failed: {exc}") from None


def _last_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {out.returncode}"


def ensure_group(jail: str) -> tuple[int, bool]:
    """(gid, created) of the jail's group, created as a system group when missing."""
    name = group_name(jail)
    gid = group_gid(name)
    if gid is not None:
        return gid, False
    if os.geteuid() != 0:
        raise InsufficientPrivilege(f"creating group {name} needs root")
    out = _run([_tool("groupadd"), "--system", name])
    gid = group_gid(name)
    if out.returncode == 0 and gid is not None:
        return gid, True
    if out.returncode == GROUPADD_NAME_IN_USE and gid is not None:
        return gid, False  # another netjail created it in between
    if "invalid" in _last_line(out).lower():
        raise BadInput(f"cannot create group {name}: {_last_line(out)}")
    raise OperationFailed(f"cannot create group {name}: {_last_line(out)}")


def remove_group(jail: str) -> bool:
    """Delete the jail's group; False when it did not exist. Call it only for a group netjail
    created (`ensure_group(...)[1]`): a group someone made by hand may own files."""
    name = group_name(jail)
    if group_gid(name) is None:
        return False
    if os.geteuid() != 0:
        raise InsufficientPrivilege(f"deleting group {name} needs root")
    out = _run([_tool("groupdel"), name])
    if out.returncode == 0:
        return True
    if out.returncode == GROUPDEL_NO_SUCH_GROUP:
        return False
    if out.returncode == GROUPDEL_PRIMARY_GROUP:
        raise OperationFailed(f"cannot delete group {name}: it is a user's primary group")
    raise OperationFailed(f"cannot delete group {name}: {_last_line(out)}")


def list_netjail_groups() -> dict[str, int]:
    """jail -> gid of every `netjail-*` group (for reconciliation: compare with what netjail
    recorded as created before removing any)."""
    return {
        g.gr_name[len(GROUP_PREFIX) :]: g.gr_gid for g in grp.getgrall() if g.gr_name.startswith(GROUP_PREFIX)
    }
