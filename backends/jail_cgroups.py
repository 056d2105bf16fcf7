"""Jail cgroups: `<cgroup2 mount>/<parent>/net-<netns inode>/<jail>/<pid>.<start time>`.

- `<parent>` is "netjail" (NETJAIL_CGROUP_PARENT overrides it: the test suite keeps concurrent
  runs apart with it);
- `net-<inode>`: rules live in one network namespace while the cgroup tree is machine-wide, so
  each namespace's netjail keeps to its own subtree and never adopts or resets another's jails;
- one sub-cgroup per blocked process (with its `--tree`), so that unblocking it drops exactly
  its `-m cgroup --path` selector: a socket keeps the cgroup it was created in, and a selector
  on the jail's directory would match every sub-cgroup below it (xt_cgroup matches
  descendants) long after the process left.

Writing a PID to `cgroup.procs` moves a whole process (all its threads); its future children
are born in the same cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from netjail.backends.errors import InsufficientPrivilege, NoSuchProcess, OperationFailed


def _own_netns() -> int:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return 0


def parent_name() -> str:
    return f"{os.environ.get('NETJAIL_CGROUP_PARENT', 'netjail')}/net-{_own_netns()}"


def jail_path(jail: str) -> str:
    """The jail's directory (relative to the mount, as `-m cgroup --path` wants it)."""
    return f"/{parent_name()}/{jail}"


def member_path(jail: str, pid: int, start_time: int) -> str:
    return f"{jail_path(jail)}/{pid}.{start_time}"


def root_of(sub: str) -> int:
    """The blocked PID a sub-cgroup was made for ("/.../web/1234.5678" -> 1234); 0 if unknown."""
    head = sub.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _abs(mount: Path, rel: str) -> Path:
    return mount / rel.lstrip("/")


def create(mount: Path, rel: str) -> int:
    """Create (or reuse) a cgroup; returns its inode."""
    path = _abs(mount, rel)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path.stat().st_ino
    except PermissionError:
        raise InsufficientPrivilege(f"cannot create cgroup {path}: needs root") from None
    except OSError as exc:
        raise OperationFailed(f"cannot create cgroup {path}: {exc.strerror}") from None


def inode(mount: Path, rel: str) -> int | None:
    try:
        return _abs(mount, rel).stat().st_ino
    except FileNotFoundError:
        return None


def move(mount: Path, rel: str, pid: int) -> None:
    path = _abs(mount, rel)
    if not path.is_dir():
        # the original cgroup is gone (its service restarted): fall back to the root
        path = mount
    try:
        (path / "cgroup.procs").write_text(f"{pid}\n")
    except ProcessLookupError:
        raise NoSuchProcess(f"no such process: {pid}") from None
    except PermissionError:
        raise InsufficientPrivilege(f"cannot move PID {pid} into {path}: needs root") from None
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise NoSuchProcess(f"no such process: {pid}") from None
        raise OperationFailed(f"cannot move PID {pid} into {path}: {exc.strerror}") from None


def procs(mount: Path, rel: str) -> list[int]:
    try:
        return [int(p) for p in (_abs(mount, rel) / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def subs(mount: Path, rel: str) -> list[str]:
    """The sub-cgroups of a jail directory, as paths relative to the mount."""
    try:
        return sorted(f"{rel}/{p.name}" for p in _abs(mount, rel).iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def all_procs(mount: Path, rel: str) -> dict[int, str]:
    """pid -> cgroup of every process in a jail directory or its sub-cgroups."""
    found = dict.fromkeys(procs(mount, rel), rel)
    for sub in subs(mount, rel):
        found.update(dict.fromkeys(procs(mount, sub), sub))
    return found


def remove(mount: Path, rel: str, release_to: dict[int, str] | None = None) -> None:
    """Move whatever still lives in the cgroup (and below) out, to its recorded origin, else the
    root, and remove it, then its parents up to the mount while they are empty. rmdir can
    briefly fail with EBUSY while exiting tasks are reaped."""
    path = _abs(mount, rel)
    if not path.is_dir():
        _prune(mount, path.parent)
        return
    for sub in subs(mount, rel):
        remove(mount, sub, release_to)
    origins = release_to or {}
    for _ in range(50):
        for pid in procs(mount, rel):
            with contextlib.suppress(NoSuchProcess):
                move(mount, origins.get(pid, "/"), pid)
        try:
            path.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise OperationFailed(f"cannot remove cgroup {path}: {exc.strerror}") from None
            time.sleep(0.02)
    else:
        raise OperationFailed(f"cannot remove cgroup {path}: still busy")
    _prune(mount, path.parent)


def _prune(mount: Path, path: Path) -> None:
    """Remove empty netjail directories above a removed cgroup, never the mount itself."""
    top = _abs(mount, os.environ.get("NETJAIL_CGROUP_PARENT", "netjail"))
    while path != mount and (path == top or top in path.parents):
        try:
            path.rmdir()  # only succeeds when empty: no processes, no children
        except OSError:
            return
        path = path.parent


def existing(mount: Path) -> list[str]:
    """Jail names that have a cgroup under this namespace's parent."""
    base = mount / parent_name()
    try:
        return sorted(p.name for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
