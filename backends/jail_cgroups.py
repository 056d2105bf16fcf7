"""Jail cgroups: `<cgroup2 mount>/<parent>/<jail>`, parent "netjail" (NETJAIL_CGROUP_PARENT
overrides it, which the test suite uses to keep concurrent runs apart).

Writing a PID to `cgroup.procs` moves a whole process (all its threads); its future children
are born in the jail. Sockets it already had keep their old cgroup (DESIGN.md fact 1), which is
why the engine also adds rules for existing sockets.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from netjail.backends.errors import InsufficientPrivilege, NoSuchProcess, OperationFailed


def parent_name() -> str:
    return os.environ.get("NETJAIL_CGROUP_PARENT", "netjail")


def jail_path(jail: str) -> str:
    """The cgroup path as seen by `-m cgroup --path` (relative to the mount)."""
    return f"/{parent_name()}/{jail}"


def _abs(mount: Path, rel: str) -> Path:
    return mount / rel.lstrip("/")


def create(mount: Path, jail: str) -> tuple[str, int]:
    """Create (or reuse) the jail's cgroup; returns its path and inode."""
    rel = jail_path(jail)
    path = _abs(mount, rel)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return rel, path.stat().st_ino
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


def remove(mount: Path, rel: str, release_to: dict[int, str] | None = None) -> None:
    """Move whatever still lives in the cgroup out (to its recorded origin, else the root) and
    remove it. rmdir can briefly fail with EBUSY while exiting tasks are reaped."""
    path = _abs(mount, rel)
    if not path.is_dir():
        return
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
    parent = path.parent
    with contextlib.suppress(OSError):
        if parent != mount and not any(p.is_dir() for p in parent.iterdir()):
            parent.rmdir()


def existing(mount: Path) -> list[str]:
    """Jail names that have a cgroup under our parent."""
    base = mount / parent_name()
    try:
        return sorted(p.name for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
