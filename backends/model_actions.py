"""The engine's requests and results (model.py re-exports them): a separate module, so that the
short commands that never act (`counters`, `list`, `ps`) do not pay for creating these
dataclasses at import (~0.5-1 ms each on Python 3.11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# a block's own types live in model_block (a block creates only those); re-exported here
from netjail.backends.model_block import (  # noqa: F401
    BlockRequest,
    BlockResult,
    SharedSocket,
    UnfilterableHeld,
)
from netjail.backends.model_block import notes as _notes

if TYPE_CHECKING:
    from netjail.backends.model import Member


@dataclass(frozen=True, slots=True)
class UnblockRequest:
    pid: int | None = None
    jail: str | None = None
    all: bool = False


@dataclass(frozen=True, slots=True)
class UnblockResult:
    released: tuple[Member, ...]
    removed_jails: tuple[str, ...]
    notes: tuple[str, ...] = _notes()


@dataclass(frozen=True, slots=True)
class MarkUse:
    """A packet, connection or socket mark someone else uses (`netjail doctor`'s marks check)."""

    value: int
    mask: int
    kind: str  # "match" (compares mark & mask with value), "set" (changes those bits), "socket"
    where: str  # the rule, routing rule or socket, e.g. "ip rule (IPv4) pref 100: fwmark 0x1 ..."
    overlaps: bool  # looks at or changes bits of netjail's range (NETJAIL_MARK_MASK)


@dataclass(frozen=True, slots=True)
class Check:
    """One `netjail doctor` line."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    marks: tuple[MarkUse, ...] = ()  # the marks check: every mark found in use


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
    # netns with an allow-list: "pasta" (user-mode, nothing host-wide), "veth" (forwarding +
    # NAT), "" = pasta when installed, else veth
    link: str = ""


@dataclass(frozen=True, slots=True)
class LaunchResult:
    jail: str
    strategy: str
    pid: int
    exit_code: int | None = None  # None while it runs (launch), set by run
    log: str = ""  # where a background launch's output goes ("" for run: the terminal)
    notes: tuple[str, ...] = _notes()


@dataclass(frozen=True, slots=True)
class OwnerBlockRequest:
    """Block every process of a user or of a group (iptables -m owner), now and later."""

    user: str | None = None  # name or uid
    group: str | None = None  # name or gid
    jail: str | None = None
    allow: tuple[str, ...] = ()
    allow_loopback: bool = False
