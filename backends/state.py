"""The jail registry: a JSON file under /run/netjail (NETJAIL_STATE_DIR overrides), written
atomically (temp file + fsync + rename) and guarded by a lock file so that two netjail commands,
the watcher and the TUI never interleave their read-modify-write.

The kernel is the source of truth for *what is jailed*; the registry remembers what the kernel
cannot tell us (original cgroups, allow-lists as typed, which step a block reached).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netjail.backends.errors import InsufficientPrivilege, OperationFailed

SCHEMA = 1
# A member's status journals what is being done to it, so a netjail killed half-way is finished
# (or undone) by the next command: pending -> active on block, releasing -> gone on unblock.
PENDING = "pending"  # block in progress: rolled back by the next command if never finished
ACTIVE = "active"
RELEASING = "releasing"  # unblock in progress: completed by the next command
LAUNCHER = "launcher"  # the `netjail run` holding a launch jail open until its command starts


def state_dir() -> Path:
    """One registry per network namespace: the rules it describes live in that namespace."""
    if env := os.environ.get("NETJAIL_STATE_DIR"):
        return Path(env)
    try:
        return Path(f"/run/netjail/net-{os.stat('/proc/self/ns/net').st_ino}")
    except OSError:
        return Path("/run/netjail")


@dataclass(slots=True)
class MemberState:
    pid: int
    start_time: int
    name: str = ""
    original_cgroup: str = "/"
    root: int = 0  # the PID this member was blocked with (itself, or its --tree ancestor)
    cgroup: str = ""  # cgroup jails: the sub-cgroup of its root it lives in
    status: str = ACTIVE


@dataclass(slots=True)
class JailState:
    name: str
    strategy: str = "cgroup"
    allow: list[str] = field(default_factory=list)
    allow_loopback: bool = False
    cgroup: str = ""  # the jail's directory relative to the cgroup2 mount (see jail_cgroups)
    cgroup_inode: int = 0
    # sub-cgroup (one per blocked root) -> inode: a re-created cgroup has a new inode, and the
    # `-m cgroup` rule loaded for the old one no longer matches: its rules must be reloaded
    cgroups: dict[str, int] = field(default_factory=dict)
    # inodes of sockets members had when they were jailed: they keep their selectors
    pre_inodes: list[int] = field(default_factory=list)
    members: list[MemberState] = field(default_factory=list)
    created_at: float = 0.0
    rebuilt: bool = False  # recovered from the kernel: original cgroups were unknown
    # owner, gid, netns and seccomp strategies
    uid: int | None = None  # owner: every process of this user
    gid: int | None = None  # owner (a group) and gid (the launch group)
    group_created: bool = False  # gid: netjail created the group and removes it with the jail
    netns: str = ""  # netns: the namespace's name in /run/netns
    veth: str = ""  # netns: the host end of its link ("" when loopback only)
    keep: bool = False  # launch strategies: keep the jail after its last process exits
    forwarding_before: list[bool] | None = None  # netns: ip_forward v4/v6 before we enabled them

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JailState:
        members = [MemberState(**m) for m in raw.pop("members", [])]
        return cls(members=members, **raw)


@dataclass(slots=True)
class Registry:
    jails: dict[str, JailState] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # drift found while loading

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, "jails": [asdict(j) for j in self.jails.values()]}, indent=1)


class Store:
    """Load/save of the registry file, under an exclusive lock held for a whole command."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or state_dir()
        self.path = self.dir / "state.json"
        self._locked = False
        self._saved = ""  # the text last read or written: saving it again is a no-op

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except PermissionError as exc:
            raise InsufficientPrivilege(f"cannot use state directory {self.dir}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._locked = True
            yield
        finally:
            self._locked = False
            os.close(fd)

    def load(self) -> Registry:
        """The registry; a missing file is empty, a corrupt one is reported and set aside."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Registry()
        except PermissionError as exc:
            raise InsufficientPrivilege(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"unknown schema {raw.get('schema')!r}")
            jails = [JailState.from_dict(dict(j)) for j in raw["jails"]]
            registry = Registry({j.name: j for j in jails})
            self._saved = registry.to_json()
            return registry
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if self._locked:  # a lock-free reader may be looking at a file being replaced
                aside = self.path.with_suffix(".corrupt")
                with contextlib.suppress(OSError):
                    os.replace(self.path, aside)
            return Registry(problems=[f"state file was corrupt ({exc}); rebuilt from the kernel"])

    def save(self, registry: Registry) -> None:
        text = registry.to_json()
        if text == self._saved and self.path.exists():
            return  # the watcher reconciles every second: most ticks change nothing
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            import tempfile  # writers only: ps and the counters just read

            fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.dir)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._saved = text
        except PermissionError as exc:
            raise InsufficientPrivilege(f"cannot write {self.path}: {exc.strerror}") from None
        except OSError as exc:
            raise OperationFailed(f"cannot write {self.path}: {exc.strerror}") from None

    def remove(self) -> None:
        for name in ("state.json", "state.corrupt", "watcher.pid"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
