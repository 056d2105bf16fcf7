"""Plain data crossing the engine boundary: frozen dataclasses that serialise to JSON.

Nothing here holds a live psutil or iptc object, so a privileged agent can later send these
over a pipe or SSH unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Dataclasses (nested, in tuples/lists/dicts) to JSON-ready builtins."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


@dataclass(frozen=True, slots=True)
class Socket:
    family: str  # "inet" | "inet6"
    proto: str  # "tcp" | "udp"
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    state: str  # TCP: ESTABLISHED, LISTEN, ...; UDP: "UNCONN" or "ESTABLISHED" (connected)
    inode: int


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: tuple[str, ...]
    user: str
    uid: int | None
    gid: int | None
    start_time: int  # clock ticks since boot (field 22 of /proc/PID/stat): with pid, the identity
    cgroup: str  # cgroup v2 path ("" when unknown)
    netns: int | None  # inode of /proc/PID/ns/net, None when denied
    state: str
    sockets: tuple[Socket, ...] = ()
    jail: str | None = None
    kernel_thread: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_time)


@dataclass(frozen=True, slots=True)
class Snapshot:
    processes: tuple[Process, ...]
    taken_at: float  # time.time()
    own_netns: int | None
    denied: tuple[str, ...] = field(default=())  # what could not be read, one line each


# ---- jails ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allow-list entry: a prefix and optionally one port (both protocols)."""

    cidr: str  # normalised, e.g. "10.0.0.0/8", "fd00::/64"
    port: int | None = None

    @property
    def family(self) -> str:
        return "inet6" if ":" in self.cidr else "inet"

    def __str__(self) -> str:
        if self.port is None:
            return self.cidr
        return f"[{self.cidr}]:{self.port}" if self.family == "inet6" else f"{self.cidr}:{self.port}"


@dataclass(frozen=True, slots=True)
class Counters:
    dropped_packets: int = 0
    dropped_bytes: int = 0
    allowed_packets: int = 0
    allowed_bytes: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.dropped_packets + other.dropped_packets,
            self.dropped_bytes + other.dropped_bytes,
            self.allowed_packets + other.allowed_packets,
            self.allowed_bytes + other.allowed_bytes,
        )


@dataclass(frozen=True, slots=True)
class JailCounters:
    jail: str
    total: Counters
    inet: Counters
    inet6: Counters
    countable: bool = True  # False for strategies netfilter cannot see (seccomp)


@dataclass(frozen=True, slots=True)
class Member:
    pid: int
    start_time: int
    alive: bool = True
    name: str = ""


@dataclass(frozen=True, slots=True)
class JailInfo:
    name: str
    strategy: str  # "cgroup", later "owner", "netns", "seccomp"
    allow: tuple[str, ...]
    members: tuple[Member, ...]
    counters: Counters
    allow_loopback: bool = False
    countable: bool = True  # False: netfilter never sees this strategy (seccomp)


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """What a jail strategy can do, so the UIs offer only what applies."""

    name: str
    description: str
    live_process: bool  # can act on a running process
    launch: bool  # can start a command already jailed
    allow_list: bool
    counters: bool


@dataclass(frozen=True, slots=True)
class BlockRequest:
    pid: int
    start_time: int | None = None  # when known (TUI): refuse if the PID now names another process
    tree: bool = False
    jail: str | None = None
    allow: tuple[str, ...] = ()
    allow_loopback: bool = False
    kill_connections: bool = False
    force: bool = False
    strategy: str = "cgroup"


@dataclass(frozen=True, slots=True)
class BlockResult:
    jail: str
    strategy: str
    members: tuple[Member, ...]
    socket_rules: int
    killed_connections: int = 0


@dataclass(frozen=True, slots=True)
class UnblockRequest:
    pid: int | None = None
    jail: str | None = None
    all: bool = False


@dataclass(frozen=True, slots=True)
class UnblockResult:
    released: tuple[Member, ...]
    removed_jails: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """One `netjail doctor` line."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str


@dataclass(frozen=True, slots=True)
class HostInfo:
    hostname: str
    kernel: str
    privileged: bool  # root: blocking possible; otherwise read-only
    firewall: str  # backend name, e.g. "iptables-legacy (python-iptables)"
    cgroup2: str  # mount point, "" when missing


@dataclass(frozen=True, slots=True)
class ResetResult:
    removed_jails: tuple[str, ...]
    released: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Start a command already jailed (`netjail run`, the TUI's launch dialog, relaunch)."""

    argv: tuple[str, ...]
    strategy: str  # "netns" | "gid" | "seccomp"
    jail: str | None = None
    allow: tuple[str, ...] = ()
    allow_loopback: bool = False  # gid: loopback stays reachable (netns: its own lo always works)
    user: str | None = None  # default: SUDO_USER, else the current user
    gid: int | None = None  # gid strategy: use this group instead of creating netjail-<jail>
    keep: bool = False  # keep the jail (netns) after the last process exits
    cwd: str | None = None  # None: the user's home (a relaunch: the process's, if the user may enter it)
    env: tuple[tuple[str, str], ...] | None = None  # set on top of the minimal environment
    force: bool = False  # gid: accept a --gid N that other processes (or root) already use
    keep_env: tuple[str, ...] = ()  # more variables from netjail's environment (minimal otherwise)


@dataclass(frozen=True, slots=True)
class LaunchResult:
    jail: str
    strategy: str
    pid: int
    exit_code: int | None = None  # None while it runs (launch), set by run
    log: str = ""  # where a background launch's output goes ("" for run: the terminal)


@dataclass(frozen=True, slots=True)
class OwnerBlockRequest:
    """Block every process of a user or of a group (iptables -m owner), now and later."""

    user: str | None = None  # name or uid
    group: str | None = None  # name or gid
    jail: str | None = None
    allow: tuple[str, ...] = ()
    allow_loopback: bool = False
