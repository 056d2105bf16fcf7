"""Plain data crossing the engine boundary: frozen dataclasses that serialise to JSON.

Nothing here holds a live psutil or iptc object, so a privileged agent can later send these
over a pipe or SSH unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


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
class UnfilterableSocket:
    """A socket netfilter never sees: an AF_PACKET socket takes and sends whole frames below
    IP, so no jail rule, cgroup match or mark can cut it (tcpdump, DHCP clients, arping)."""

    kind: str  # "packet"
    inode: int
    type: str  # "raw" (frames with their link header) | "dgram" (cooked) | "SOCK_TYPE_n"
    protocol: int  # ethertype it receives: 0x0003 every one (ETH_P_ALL), 0 none yet
    ifindex: int  # 0: every interface
    interface: str  # the interface's name when the socket is in netjail's namespace, else ""


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
    unfilterable: tuple[UnfilterableSocket, ...] = ()  # a block cannot cut these: not fully blockable
    unit: str | None = None  # systemd unit, from the cgroup path ("nginx.service"; systemd_units)
    # TCP payload bytes per second since the previous refresh of an Inventory counting traffic
    # (sent: acknowledged by the peer); None: not measured (no TCP socket with counters, the
    # first refresh, or an inventory that does not count). UDP, raw and packet sockets never are.
    send_rate: float | None = None
    recv_rate: float | None = None

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
    link: str = ""  # netns: "pasta", "veth" or "none" (loopback only); "" for other strategies


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """What a jail strategy can do, so the UIs offer only what applies."""

    name: str
    description: str
    live_process: bool  # can act on a running process
    launch: bool  # can start a command already jailed
    allow_list: bool
    counters: bool


# Requests and results live in model_actions, imported on first use (PEP 562): see there.
_ACTIONS = frozenset(
    {
        "BlockRequest",
        "BlockResult",
        "SharedSocket",
        "UnfilterableHeld",
        "UnblockRequest",
        "UnblockResult",
        "Check",
        "MarkUse",
        "HostInfo",
        "ResetResult",
        "LaunchRequest",
        "LaunchResult",
        "OwnerBlockRequest",
    }
)

if TYPE_CHECKING:
    from netjail.backends.model_actions import (
        BlockRequest as BlockRequest,
    )
    from netjail.backends.model_actions import (
        BlockResult as BlockResult,
    )
    from netjail.backends.model_actions import (
        Check as Check,
    )
    from netjail.backends.model_actions import (
        HostInfo as HostInfo,
    )
    from netjail.backends.model_actions import (
        LaunchRequest as LaunchRequest,
    )
    from netjail.backends.model_actions import (
        LaunchResult as LaunchResult,
    )
    from netjail.backends.model_actions import (
        MarkUse as MarkUse,
    )
    from netjail.backends.model_actions import (
        OwnerBlockRequest as OwnerBlockRequest,
    )
    from netjail.backends.model_actions import (
        ResetResult as ResetResult,
    )
    from netjail.backends.model_actions import (
        SharedSocket as SharedSocket,
    )
    from netjail.backends.model_actions import (
        UnblockRequest as UnblockRequest,
    )
    from netjail.backends.model_actions import (
        UnblockResult as UnblockResult,
    )
    from netjail.backends.model_actions import (
        UnfilterableHeld as UnfilterableHeld,
    )


def __getattr__(name: str) -> Any:
    if name in _ACTIONS:
        from netjail.backends import model_actions

        return getattr(model_actions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
