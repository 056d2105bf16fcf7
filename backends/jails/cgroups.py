"""Jail cgroups: `<cgroup2 mount>/<parent>/net-<netns inode>/<jail>/<pid>.<start time>`.

- `<parent>` is "netjail" (NETJAIL_CGROUP_PARENT overrides it: the test suite keeps concurrent
  runs apart with it);
- `net-<inode>`: rules live in one network namespace while the cgroup tree is machine-wide, so
  each namespace's netjail keeps to its own subtree and never adopts or resets another's jails;
- one sub-cgroup per blocked process (with its `--tree`), so that unblocking it drops exactly
  its `-m cgroup --path` selector: a socket keeps the cgroup it was created in, and a selector
  on the jail's directory would match every sub-cgroup below it (xt_cgroup matches
  descendants) long after the process left.

A process that belongs to a systemd unit is never taken out of its cgroup (systemd_units.py):
its jail lives inside that cgroup instead, `<its cgroup>/<parent>-net-<netns inode>/<jail>/<pid>.
<start time>`, the same layout one level down. systemd lists such processes under the unit,
kills them with it and removes the cgroups with it; nothing is ever created where the unit's
cgroup is gone (create(within=...)).

Writing a PID to `cgroup.procs` moves a whole process (all its threads); its future children
are born in the same cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import time
from collections.abc import Iterable
from pathlib import Path

from netjail.backends.errors import InsufficientPrivilege, NetjailError, NoSuchProcess, OperationFailed
from netjail.backends.jails import move_check
from netjail.backends.system import identity, procio, systemd_units
from netjail.backends.system.cgroupfs import read_cgroup


def _base() -> str:
    return os.environ.get("NETJAIL_CGROUP_PARENT", "netjail")


def parent_name() -> str:
    return f"{_base()}/net-{procio.netns_inode() or 0}"


def unit_dir_name() -> str:
    """The one directory netjail makes inside a unit's cgroup (per network namespace)."""
    return f"{_base().replace('/', '-')}-net-{procio.netns_inode() or 0}"


def place(origin: str | None) -> str:
    """Where the jails of a process in cgroup `origin` live: inside it when it belongs to a
    systemd unit whose cgroups only root may change, else under netjail's own parent. A tree a
    user owns (their user@UID.service, a unit delegated to them) would let them move the jailed
    process back out (they own the common ancestor): measured by the attack review, 300 of 300
    datagrams out. Such a process leaves its unit instead, as before units were kept."""
    if origin and systemd_units.unit_of(origin) and _only_root_may_change(origin):
        return f"{origin.rstrip('/')}/{unit_dir_name()}"
    return f"/{parent_name()}"


def _only_root_may_change(rel: str) -> bool:
    """Every directory from the cgroup2 mount down to `rel`, and its cgroup.procs, belong to
    root and are writable by nobody else."""
    from netjail.backends.system.cgroupfs import find_cgroup2

    found = find_cgroup2()
    if found is None:
        return False
    path = Path(found.path)
    try:
        for part in ["", *rel.strip("/").split("/")]:
            path = path / part if part else path
            st = os.stat(path, follow_symlinks=False)
            if st.st_uid != 0 or st.st_mode & 0o022:
                return False
        procs = os.stat(path / "cgroup.procs", follow_symlinks=False)
    except OSError:
        return False
    return procs.st_uid == 0 and not procs.st_mode & 0o022


def unit_base(rel: str) -> str | None:
    """The unit cgroup a netjail cgroup was made inside (None: under netjail's own parent):
    ".../nginx.service/netjail-net-X/web/1.2" -> ".../nginx.service"."""
    parts = rel.strip("/").split("/")
    mine = unit_dir_name()
    if mine in parts[1:]:
        return "/" + "/".join(parts[: parts.index(mine)])
    return None


def in_jail(cgroup: str, subs: Iterable[str]) -> bool:
    return any(cgroup == s or cgroup.startswith(s + "/") for s in subs)


def jail_path(jail: str) -> str:
    """The jail's directory (relative to the mount, as `-m cgroup --path` wants it)."""
    return f"/{parent_name()}/{jail}"


def member_path(jail: str, pid: int, start_time: int, origin: str | None = None) -> str:
    """A blocked root's sub-cgroup, for its members coming from cgroup `origin` (see place)."""
    return f"{place(origin)}/{jail}/{pid}.{start_time}"


def root_of(sub: str) -> int:
    """The blocked PID a sub-cgroup was made for ("/.../web/1234.5678" -> 1234); 0 if unknown."""
    head = sub.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _abs(mount: Path, rel: str) -> Path:
    return mount / rel.lstrip("/")


def create(mount: Path, rel: str) -> int:
    """Create (or reuse) a cgroup; returns its inode. Inside a unit only the part below the
    unit's cgroup is made, one level at a time: a unit stopped meanwhile makes it fail, never
    re-creates the unit's cgroup behind systemd's back."""
    path = _abs(mount, rel)
    within = unit_base(rel)
    try:
        if within is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            below = rel[len(within) :].strip("/").split("/")
            for i in range(len(below)):
                _abs(mount, "/".join([within, *below[: i + 1]])).mkdir(exist_ok=True)
        return path.stat().st_ino
    except PermissionError:
        raise InsufficientPrivilege(f"cannot create cgroup {path}: needs root") from None
    except FileNotFoundError:
        raise NoSuchProcess(f"cgroup {within} is gone (its unit stopped)") from None
    except OSError as exc:
        raise OperationFailed(f"cannot create cgroup {path}: {exc.strerror}") from None


def inode(mount: Path, rel: str) -> int | None:
    try:
        return _abs(mount, rel).stat().st_ino
    except FileNotFoundError:
        return None


def nearest_existing(mount: Path, rel: str) -> str:
    """rel, or its nearest ancestor that still exists (a service restarted, a test's cgroup
    removed): never the root while a closer ancestor is there, or a released process would
    escape its slice's limits."""
    path = posixpath.normpath("/" + rel.lstrip("/"))
    while path != "/" and not _abs(mount, path).is_dir():
        path = posixpath.dirname(path)
    return path


def move(mount: Path, rel: str, pid: int) -> str:
    """Move pid into rel, or its nearest existing ancestor; returns the cgroup it went to.

    An ancestor may refuse processes (cgroup2's no-internal-process rule: EBUSY when it has
    domain controllers enabled for its children), then the next one up is tried; the root
    always accepts."""
    target = nearest_existing(mount, rel)
    while True:
        try:
            _write_pid(_abs(mount, target), pid)
            return target
        except OperationFailed as exc:
            if target == "/" or exc.__cause__ is None or getattr(exc.__cause__, "errno", 0) not in _NO_PROCS:
                raise
            target = posixpath.dirname(target)


_NO_PROCS = (errno.EBUSY, errno.EOPNOTSUPP)


def move_process(
    mount: Path, rel: str, pid: int, start_time: int | None = None, inside: str | None = None
) -> str:
    """move(), for exactly the process meant: (pid, start_time) when given, else whatever is in
    the cgroup `inside` now. Returns the cgroup it went to; NoSuchProcess when it is gone (or
    died during the move: see move_check for what a write that may have hit a PID's next owner
    is followed by)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NoSuchProcess(f"no such process: {pid}") from None
    except OSError:  # no pidfds (Linux < 5.3): a check just before the write is all there is
        _expect(mount, pid, start_time, inside)
        return move(mount, rel, pid)
    try:
        # after the pidfd: a PID never goes back to an older process, so a match now means the
        # pidfd holds the very process checked
        start = _expect(mount, pid, start_time, inside)
        where = move(mount, rel, pid)
        alive = not procio.pidfd_exited(pidfd)
        if alive:
            return where
        return _after_death(mount, pid, start, where)
    finally:
        os.close(pidfd)


def _expect(mount: Path, pid: int, start_time: int | None, inside: str | None) -> int:
    stat = identity.current(pid, start_time)
    # cgroup.procs, not /proc/PID/cgroup: the same path space as `inside` (relative to the mount)
    if inside is not None and pid not in procs(mount, inside):
        raise NoSuchProcess(f"PID {pid} left {inside}")
    return int(stat.start_time)


def _after_death(mount: Path, pid: int, start: int, where: str) -> str:
    now_stat = identity.read_stat(pid)
    now = parent = None
    with contextlib.suppress(NoSuchProcess):
        if now_stat is not None:
            now = move_check.Seen(now_stat.start_time, read_cgroup(pid))
            parent = read_cgroup(now_stat.ppid)
    verdict, back = move_check.after_write(start, False, now, parent, where)
    if verdict == move_check.RESTORE and back is not None:
        with contextlib.suppress(NetjailError):
            move(mount, back, pid)
        raise NoSuchProcess(f"PID {pid} exited while being moved; its next owner went back to {back}")
    if verdict == move_check.UNKNOWN:
        raise NoSuchProcess(
            f"PID {pid} exited while being moved; PID {pid} may now be another process, left in {where}"
        )
    raise NoSuchProcess(f"PID {pid} exited while being moved")


def _write_pid(path: Path, pid: int) -> None:
    try:
        (path / "cgroup.procs").write_text(f"{pid}\n")
    except ProcessLookupError:
        raise NoSuchProcess(f"no such process: {pid}") from None
    except PermissionError:
        raise InsufficientPrivilege(f"cannot move PID {pid} into {path}: needs root") from None
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise NoSuchProcess(f"no such process: {pid}") from None
        raise OperationFailed(f"cannot move PID {pid} into {path}: {exc.strerror}") from exc


def procs(mount: Path, rel: str) -> list[int]:
    try:
        return [int(p) for p in (_abs(mount, rel) / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def subs(mount: Path, rel: str) -> list[str]:
    """The sub-cgroups of a jail directory, as paths relative to the mount."""
    # scandir's entry types come with the listing: is_dir() on each of a cgroup's ~40 control
    # files cost a stat each, 20 ms per watcher pass at 50 jails
    try:
        with os.scandir(_abs(mount, rel)) as entries:
            return sorted(f"{rel}/{e.name}" for e in entries if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def all_procs(mount: Path, rel: str) -> dict[int, str]:
    """pid -> cgroup of every process in a jail directory or its sub-cgroups."""
    found = dict.fromkeys(procs(mount, rel), rel)
    for sub in subs(mount, rel):
        found.update(dict.fromkeys(procs(mount, sub), sub))
    return found


def jail_procs(mount: Path, rel: str, known: Iterable[str]) -> dict[int, str]:
    """all_procs() of a jail's directory and of its known sub-cgroups elsewhere (inside units)."""
    found = all_procs(mount, rel)
    for sub in known:
        if not sub.startswith(rel + "/"):
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
    home = unit_base(rel) or "/"  # never out of the unit
    for _ in range(50):
        for pid in procs(mount, rel):
            with contextlib.suppress(NoSuchProcess):
                move_process(mount, origins.get(pid, home), pid, inside=rel)
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
    """Remove empty netjail directories above a removed cgroup, never the mount itself, never
    a unit's own cgroup."""
    top = _abs(mount, _base())
    mine = unit_dir_name()

    def ours(p: Path) -> bool:
        return p == top or top in p.parents or p.name == mine or any(a.name == mine for a in p.parents)

    while path != mount and ours(path):
        try:
            path.rmdir()  # only succeeds when empty: no processes, no children
        except OSError:
            return
        path = path.parent


def unit_dirs(mount: Path) -> list[str]:
    """netjail's directories inside units (this namespace's), found by walking the tree:
    for reset, which must leave every unit as it was even when the state file is lost."""
    mine = unit_dir_name()
    found = []
    for top, dirs, _files in os.walk(mount):
        if mine in dirs:
            found.append("/" + os.path.relpath(os.path.join(top, mine), mount))
            dirs.remove(mine)
    return found


def existing(mount: Path) -> list[str]:
    """Jail names that have a cgroup under this namespace's parent."""
    base = mount / parent_name()
    try:
        return sorted(p.name for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
