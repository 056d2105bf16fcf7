"""A block's request and result (model.py and model_actions re-export them): apart from the
other requests and results, so that `netjail block` creates only these dataclasses (each
compiles its generated methods at import: ~0.5-1 ms on Python 3.11), not those of launch,
unblock, reset and doctor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netjail.backends.model import Member, UnfilterableSocket


def notes() -> tuple[str, ...]:
    """A result's notes: what the engine found and did on the way (drift repaired, host-wide
    changes), for the UI to show. Not part of --json output (metadata read by cli_output)."""
    return field(default=(), compare=False, metadata={"json": False})


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
class UnfilterableHeld:
    """A member's sockets the block leaves open: netfilter never sees them (AF_PACKET)."""

    pid: int
    name: str
    sockets: tuple[UnfilterableSocket, ...]


@dataclass(frozen=True, slots=True)
class SharedSocket:
    """A socket a member holds that processes outside the jail hold too (inherited across fork,
    passed over a unix socket): one socket, so the block cuts it for them as well."""

    inode: int
    description: str  # "tcp LISTEN 0.0.0.0:8080", or "" when the inventory did not list it
    members: tuple[int, ...]  # the jailed PIDs holding it
    others: tuple[Member, ...]  # the processes outside the jail holding it


@dataclass(frozen=True, slots=True)
class BlockResult:
    jail: str
    strategy: str
    members: tuple[Member, ...]
    socket_rules: int  # address and set selectors (sockets that could not be marked)
    killed_connections: int = 0
    marked_sockets: int = 0  # sockets carrying the jail's mark (socket_marks)
    set_entries: int = 0  # entries of the jail's fallback sets (the sockets that could not be marked)
    unfilterable: tuple[UnfilterableHeld, ...] = ()  # left open: the members are not fully blocked
    shared: tuple[SharedSocket, ...] = ()  # also cut for processes outside the jail
    unit: str | None = None  # the systemd unit the process belongs to (systemd_units)
    cgroup: str = ""  # where its jail lives: its member cgroup
    notes: tuple[str, ...] = notes()
