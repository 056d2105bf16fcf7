"""The jail registry: a JSON file under /run/netjail (NETJAIL_STATE_DIR overrides), written
atomically (temp file + fsync + rename) and guarded by a lock file so that two netjail commands,
the watcher and the TUI never interleave their read-modify-write.

Root acts on what this directory says (moves PIDs into cgroups, drops their traffic, writes
files in it): a directory another user can write is refused (exit 3), and nothing in it is
opened through a symlink.

The kernel is the source of truth for *what is jailed*; the registry remembers what the kernel
cannot tell us (original cgroups, allow-lists as typed, which step a block reached).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from _thread import get_ident  # threading.get_ident, without threading's import
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from netjail.backends.errors import BadInput, InsufficientPrivilege, NetjailError, OperationFailed
from netjail.backends.system.procio import netns_inode
from netjail.backends.system.trusted_paths import stat_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    S = TypeVar("S", bound="StrategyState")

SCHEMA = 1


class StrategyName(StrEnum):
    """How a jail holds its processes (strategies/ has one module each). A StrEnum: the state
    file and --json output keep the plain string."""

    CGROUP = "cgroup"
    OWNER = "owner"
    NETNS = "netns"
    GID = "gid"
    SECCOMP = "seccomp"


class MemberStatus(StrEnum):
    """A member's status journals what is being done to it, so a netjail killed half-way is
    finished (or undone) by the next command: pending -> active on block, releasing -> gone on
    unblock."""

    PENDING = "pending"  # block in progress: rolled back by the next command if never finished
    ACTIVE = "active"
    RELEASING = "releasing"  # unblock in progress: completed by the next command
    LAUNCHER = "launcher"  # the `netjail run` holding a launch jail open until its command starts


PENDING = MemberStatus.PENDING
ACTIVE = MemberStatus.ACTIVE
RELEASING = MemberStatus.RELEASING
LAUNCHER = MemberStatus.LAUNCHER


def state_dir() -> Path:
    """One registry per network namespace: the rules it describes live in that namespace."""
    if env := os.environ.get("NETJAIL_STATE_DIR"):
        return Path(env)
    inode = netns_inode()
    return Path("/run/netjail") if inode is None else Path(f"/run/netjail/net-{inode}")


@dataclass(slots=True)
class MemberState:
    pid: int
    start_time: int
    name: str = ""
    original_cgroup: str = "/"
    root: int = 0  # the PID this member was blocked with (itself, or its --tree ancestor)
    cgroup: str = ""  # cgroup jails: the sub-cgroup of its root it lives in
    status: MemberStatus = ACTIVE


class StrategyState:
    """A strategy's own part of a jail's state: each strategy module defines its subclass
    (Strategy.state_type) and reads it with its own typed accessor. Plain classes, not
    dataclasses: each @dataclass costs ~1 ms at import, paid by `list` and `counters`.

    On disk its fields sit beside the jail's own, one flat record as schema 1 always had
    (every jail lists every strategy's fields, other strategies' at their defaults), so the
    file format does not depend on how the code groups them (tests/unit/test_state_format.py).
    """

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()  # the names this state has in the file, in file order

    def record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.record() == other.record()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses around it

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.record().items())})"


@dataclass(slots=True)
class JailState:
    name: str
    strategy: StrategyName = StrategyName.CGROUP
    allow: list[str] = field(default_factory=list)
    allow_loopback: bool = False
    # inodes of sockets members had when they were jailed: they keep their selectors
    pre_inodes: list[int] = field(default_factory=list)
    members: list[MemberState] = field(default_factory=list)
    # the socket mark of this jail (socket_marks; cgroup jails, a netns jail's pasta link): its
    # value inside mark_mask, the sockets netjail marked as [inode, original mark] (put back on
    # release), those left alone because they carry a mark outside netjail's range, and whether
    # pidfd_getfd was refused; mark_force: blocked with --force, so sockets with such a mark are
    # re-marked too (later ones by the watcher as well), their own mark put back on release
    mark: int = 0
    mark_mask: int = 0
    marks: list[list[int]] = field(default_factory=list)
    mark_foreign: list[int] = field(default_factory=list)
    marks_unavailable: bool = False
    mark_force: bool = False
    # connections accepted from a marked listener's queue, not marked yet, as
    # [family, port, local, remote] (accept_queue): in the jail's flow set until they are
    queued: list[list[Any]] = field(default_factory=list)
    created_at: float = 0.0
    rebuilt: bool = False  # recovered from the kernel: original cgroups were unknown
    keep: bool = False  # launch strategies: keep the jail after its last process exits
    # the strategy's own fields (None: its defaults); strategies/<name>.py reads them typed
    detail: StrategyState = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.detail is None:
            self.detail = _state_types()[self.strategy]()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JailState:
        members = []
        for m in raw.pop("members", []):
            member = MemberState(**m)
            member.status = MemberStatus(member.status)
            members.append(member)
        name = raw.pop("strategy", StrategyName.CGROUP)
        types = _state_types()
        if name not in types:
            raise ValueError(f"unknown strategy {name!r}")
        kind = types[name]
        # the enum's member; a registered strategy's name the enum lacks stays a string
        name = StrategyName._value2member_map_.get(name, name)
        detail = kind()
        for key in kind.FIELDS:
            if key in raw:
                setattr(detail, key, raw.pop(key))
        for key in _foreign_fields(types):  # other strategies' fields: their defaults
            raw.pop(key, None)
        return cls(strategy=name, members=members, detail=detail, **raw)

    def record(self, blank: dict[str, Any]) -> dict[str, Any]:
        """The jail as the file holds it (`blank`: file_template())."""
        rec = dict(blank)
        for name in _JAIL_FIELDS:
            rec[name] = getattr(self, name)
        rec.update(self.detail.record())
        return rec


def detail_of(jail: JailState, kind: type[S]) -> S:
    """The jail's own state as its strategy's type (each strategy module has its accessor)."""
    detail = jail.detail
    if not isinstance(detail, kind):
        raise TypeError(f"jail {jail.name!r} is a {jail.strategy} jail, not {kind.__name__}'s")
    return detail


# schema 1's field order (the jail's own and every strategy's, interleaved as the flat record
# of old had them); fields a new strategy adds follow, in registry order
_FILE_ORDER = (
    "name", "strategy", "allow", "allow_loopback", "cgroup", "cgroup_inode", "cgroups",
    "pre_inodes", "members", "mark", "mark_mask", "marks", "mark_foreign", "marks_unavailable",
    "mark_force", "queued", "created_at", "rebuilt", "uid", "gid", "group_created", "netns",
    "veth", "keep", "forwarding_before", "link", "pasta_pid", "pasta_start", "pasta_cgroup",
)  # fmt: skip
_JAIL_FIELDS = tuple(f for f in _FILE_ORDER if f in JailState.__dataclass_fields__)


def _state_types() -> dict[str, type[StrategyState]]:
    # the registry imports this module: looked up at first use, not at import
    from netjail.backends.jails.strategies import STATE_TYPES

    return STATE_TYPES


def _foreign_fields(types: dict[str, type[StrategyState]]) -> set[str]:
    return {key for kind in types.values() for key in kind.FIELDS}


def file_template() -> dict[str, Any]:
    """Every field a jail's record holds, in file order, each at its default (strategies'
    defaults from a fresh state of theirs; a field two strategies share, gid, has one)."""
    blank: dict[str, Any] = dict.fromkeys(_FILE_ORDER)
    for kind in _state_types().values():
        for key, value in kind().record().items():
            if key not in blank or blank[key] is None:
                blank[key] = value
    return blank


def _fields(obj: object) -> dict[str, Any]:
    if isinstance(obj, JailState):
        return obj.record(file_template())
    return {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]


# the firewall backend (firewall/registry.py) jails of a file without "backend" were made with:
# the only one there was
FIRST_BACKEND = "iptables"


@dataclass(slots=True)
class Registry:
    jails: dict[str, JailState] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # drift found while loading
    # the firewall backend the jails were made with: they are reconciled with it, and no other
    # is used while they live ("" when none is recorded: the file has no jails)
    backend: str = ""

    def to_json(self) -> str:
        # orjson writes dataclasses itself: asdict() deep-copies, and json's indenting encoder
        # is pure Python; both cost ~50 ms for a jail holding 2,000 marked sockets
        import orjson

        blank = file_template()
        doc = {
            "schema": SCHEMA,
            "backend": self.backend,
            "jails": [j.record(blank) for j in self.jails.values()],
        }
        try:
            return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONEncodeError:
            # a name that is not UTF-8 (kept with surrogateescape): orjson refuses lone
            # surrogates, json writes them as \udcXX escapes, read back as they were
            return json.dumps(doc, indent=1, default=_fields)


KNOWN_FILES = ("state.json", "state.corrupt", "lock", "watcher.pid", "watcher.log", "watcher.tick", "logs")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


def _refusal(path: str, exc: OSError) -> NetjailError:
    """One line for a failed open under the state directory."""
    if exc.errno == errno.ELOOP:
        return InsufficientPrivilege(f"unsafe state directory: {path} is a symbolic link (refused)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InsufficientPrivilege(f"cannot use state directory {path}: {exc.strerror}")
    return OperationFailed(f"cannot use {path}: {exc.strerror}")


def open_checked_dir(path: Path, *, create: bool) -> int | None:
    """A file descriptor on `path`, opened one component at a time from "/" without following
    symlinks, each directory checked like OpenSSH's StrictModes: owned by root (or the user
    netjail runs as), not writable by group or others (sticky directories above it excepted).
    Missing directories are created with mode 0700 when `create`; else None is returned.

    Files are then opened relative to this descriptor, so swapping a directory on the way
    cannot redirect them. A symlink above the last component (/var/run -> /run) is resolved
    once, up front; the state directory itself must not be one."""
    absolute = Path(os.path.abspath(path))
    if not absolute.name:
        raise InsufficientPrivilege(f"unsafe state directory {path}: not a directory of its own")
    names = [*Path(os.path.realpath(absolute.parent)).parts[1:], absolute.name]
    fd = os.open("/", _DIR_FLAGS)
    here = "/"
    try:
        _check_dir(fd, absolute, here, last=False)
        for i, name in enumerate(names):
            here = os.path.join(here, name)
            nxt = _open_dir(fd, name, create, absolute, here)
            if nxt is None:
                os.close(fd)
                return None
            os.close(fd)
            fd = nxt
            _check_dir(fd, absolute, here, last=i == len(names) - 1)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_dir(parent: int, name: str, create: bool, absolute: Path, here: str) -> int | None:
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if _is_link(parent, name) else "not a directory"
            raise InsufficientPrivilege(f"unsafe state directory {absolute}: {here} is {kind}") from None
        raise _refusal(here, exc) from None


def _is_link(dfd: int, name: str) -> bool:
    """O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR, not ELOOP: tell them apart."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _check_dir(fd: int, absolute: Path, here: str, *, last: bool) -> None:
    if problem := stat_problem(os.fstat(fd), sticky_ok=not last):
        raise InsufficientPrivilege(f"unsafe state directory {absolute}: {here} is {problem}")


class Store:
    """Load/save of the registry file, under an exclusive lock held for a whole command.

    The directory is checked (`open_checked_dir`) before every use, and every file in it is
    opened relative to that checked descriptor with O_NOFOLLOW: a symlink planted there is an
    error, never followed."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or state_dir()
        self.path = self.dir / "state.json"
        self._locked = False
        self._saved = ""  # the text last read or written: saving it again is a no-op
        self._held: tuple[int, int] | None = None  # (thread, directory fd) while locked

    @contextlib.contextmanager
    def _opened(self, create: bool) -> Iterator[int | None]:
        """The checked directory's fd: the one the lock holder opened (same thread only: the
        TUI reads without the lock from other threads), else a fresh one."""
        if self._held is not None and self._held[0] == get_ident():
            yield self._held[1]
            return
        try:
            fd = open_checked_dir(self.dir, create=create)
        except PermissionError as exc:
            raise InsufficientPrivilege(f"cannot use state directory {self.dir}: {exc.strerror}") from None
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._opened(create=True) as dfd:
            assert dfd is not None
            self._refuse_symlinks(dfd)
            try:
                fd = os.open("lock", os.O_RDWR | os.O_CREAT | _FILE_FLAGS, 0o600, dir_fd=dfd)
            except OSError as exc:
                raise _refusal(str(self.dir / "lock"), exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._locked = True
                self._held = (get_ident(), dfd)
                yield
            finally:
                self._held = None
                self._locked = False
                os.close(fd)

    def _refuse_symlinks(self, dfd: int) -> None:
        """Refuse up front, before a command changes anything, rather than half-way through
        when the open of one of them fails."""
        for name in KNOWN_FILES:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                    raise InsufficientPrivilege(
                        f"unsafe state directory: {self.dir / name} is a symbolic link (refused)"
                    )

    # ---- files in the directory ---------------------------------------------------------------

    def read_text(self, name: str) -> str | None:
        """A file's text; None when it (or the directory) does not exist."""
        with self._opened(create=False) as dfd:
            if dfd is None:
                return None
            try:
                fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dfd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise _refusal(str(self.dir / name), exc) from None
            with os.fdopen(fd, "rb") as f:
                return f.read().decode(errors="replace")

    def _write(self, name: str, text: str, flags: int) -> None:
        with self._opened(create=True) as dfd:
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | flags | _FILE_FLAGS, 0o600, dir_fd=dfd)
            except OSError as exc:
                raise _refusal(str(self.dir / name), exc) from None
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode(errors="backslashreplace"))  # names may carry non-UTF-8 bytes

    def write_text(self, name: str, text: str) -> None:
        self._write(name, text, os.O_TRUNC)

    def append_text(self, name: str, text: str) -> None:
        self._write(name, text, os.O_APPEND)

    def unlink(self, name: str) -> None:
        """Remove a file (never what a symlink points to); a missing one is fine."""
        with self._opened(create=False) as dfd:
            if dfd is None:
                return
            try:
                os.unlink(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _refusal(str(self.dir / name), exc) from None

    def open_log(self, jail: str) -> int:
        """An O_APPEND fd on logs/<jail>.log, for a launched command's output (root appends
        to it on the command's behalf)."""
        if "/" in jail or jail in ("", ".", ".."):
            raise BadInput(f"not a jail name for a log file: {jail!r}")
        where = str(self.dir / "logs")
        with self._opened(create=True) as dfd:
            assert dfd is not None
            try:
                with contextlib.suppress(FileExistsError):
                    os.mkdir("logs", 0o700, dir_fd=dfd)
                logs = os.open("logs", _DIR_FLAGS, dir_fd=dfd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR and _is_link(dfd, "logs"):
                    raise InsufficientPrivilege(
                        f"unsafe state directory: {where} is a symbolic link"
                    ) from None
                raise _refusal(where, exc) from None
            try:
                if problem := stat_problem(os.fstat(logs)):
                    raise InsufficientPrivilege(f"unsafe state directory: {where} is {problem}")
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _FILE_FLAGS
                return os.open(f"{jail}.log", flags, 0o600, dir_fd=logs)
            except OSError as exc:
                raise _refusal(f"{where}/{jail}.log", exc) from None
            finally:
                os.close(logs)

    # ---- the registry -------------------------------------------------------------------------

    def load(self) -> Registry:
        """The registry; a missing file is empty, a corrupt one is reported and set aside."""
        text = self.read_text("state.json")
        if text is None:
            return Registry()
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"unknown schema {raw.get('schema')!r}")
            jails = [JailState.from_dict(dict(j)) for j in raw["jails"]]
            backend = raw.get("backend", FIRST_BACKEND if jails else "")
            if not isinstance(backend, str):
                raise TypeError(f"backend {backend!r} is not a name")
            registry = Registry({j.name: j for j in jails}, backend=backend)
            # the file's own text: saving what it already holds is the no-op; a reader never
            # serialises (that imported orjson and cost ~1 ms a jail for `list`/`counters`).
            # Only the lock holder's read counts: a lock-free reader (the TUI's counters thread)
            # may have read the file before the holder's last save and finish after it, and
            # its old text made the holder skip a save back to that registry (block, then
            # unblock: the file kept the jail; 4 of 317 saves in 10 s)
            if self._held is not None and self._held[0] == get_ident():
                self._saved = text
            return registry
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if self._held is not None:  # a lock-free reader may be looking at a file being replaced
                with self._opened(create=False) as dfd, contextlib.suppress(OSError):
                    os.replace("state.json", "state.corrupt", src_dir_fd=dfd, dst_dir_fd=dfd)
            return Registry(problems=[f"state file was corrupt ({exc}); rebuilt from the kernel"])

    def save(self, registry: Registry) -> None:
        text = registry.to_json()
        with self._opened(create=True) as dfd:
            assert dfd is not None
            if text == self._saved and _exists(dfd, "state.json"):
                return  # the watcher reconciles every second: most ticks change nothing
            tmp = f".state.{os.urandom(8).hex()}"  # what secrets.token_hex does, without its import (~6 ms)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o600, dir_fd=dfd)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(text.encode())
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, "state.json", src_dir_fd=dfd, dst_dir_fd=dfd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
                    raise
                self._saved = text
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.ELOOP):
                    raise _refusal(str(self.path), exc) from None
                raise OperationFailed(f"cannot write {self.path}: {exc.strerror}") from None

    def remove(self) -> None:
        for name in ("state.json", "state.corrupt", "watcher.pid", "watcher.tick"):
            self.unlink(name)


def _exists(dfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
