"""Plain data crossing the engine boundary: frozen dataclasses that serialise to JSON.

Nothing here holds a live psutil or iptc object, so a privileged agent can later send these
over a pipe or SSH unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
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


# Socket, UnfilterableSocket, Process and Snapshot (what the inventory reports) live in
# model_processes, imported on first use like the requests and results below: `list` and
# `counters` never build one, and creating those four dataclasses cost them ~3 ms.


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
    loopback_option: bool = False  # launch: --allow-loopback applies (a netns has its own lo)
    keep_option: bool = False  # launch: --keep applies (the jail outlives its command)
    effect: str = ""  # launch: how the command runs, for a confirmation ("in a new network namespace")
    member_release: bool = False  # unblock PID releases that member alone (else the whole jail)


# Requests and results live in model_actions, imported on first use (PEP 562): see there.
_BLOCK = frozenset({"BlockRequest", "BlockResult", "SharedSocket", "UnfilterableHeld"})
_ACTIONS = frozenset(
    {
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

_PROCESSES = frozenset({"Socket", "UnfilterableSocket", "Process", "Snapshot"})

if TYPE_CHECKING:
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
        UnblockRequest as UnblockRequest,
    )
    from netjail.backends.model_actions import (
        UnblockResult as UnblockResult,
    )
    from netjail.backends.model_block import (
        BlockRequest as BlockRequest,
    )
    from netjail.backends.model_block import (
        BlockResult as BlockResult,
    )
    from netjail.backends.model_block import (
        SharedSocket as SharedSocket,
    )
    from netjail.backends.model_block import (
        UnfilterableHeld as UnfilterableHeld,
    )
    from netjail.backends.model_processes import (
        Process as Process,
    )
    from netjail.backends.model_processes import (
        Snapshot as Snapshot,
    )
    from netjail.backends.model_processes import (
        Socket as Socket,
    )
    from netjail.backends.model_processes import (
        UnfilterableSocket as UnfilterableSocket,
    )


def __getattr__(name: str) -> Any:
    if name in _BLOCK:
        from netjail.backends import model_block

        return getattr(model_block, name)
    if name in _ACTIONS:
        from netjail.backends import model_actions

        return getattr(model_actions, name)
    if name in _PROCESSES:
        from netjail.backends import model_processes

        return getattr(model_processes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
