"""Past-tense messages the thread workers post once an engine call returned.

Failures are not messages: a worker that raises ends in the ERROR state and the screen's one
`Worker.StateChanged` handler reports it, so no engine call can fail silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from netjail.backends.model import (
    BlockRequest,
    BlockResult,
    HostInfo,
    JailCounters,
    JailInfo,
    LaunchRequest,
    LaunchResult,
    OwnerBlockRequest,
    Process,
    Snapshot,
    StrategyInfo,
    UnblockResult,
)
from textual.message import Message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netjail.backends.attempts.store import AttemptRow


class EngineNoted(Message):
    """What the engine noticed while acting (a process left in an unnamed namespace, drift
    repaired ...): shown as warnings, as the CLI prints them on stderr."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__()
        self.notes = notes


class HostRead(Message):
    def __init__(self, host: HostInfo) -> None:
        super().__init__()
        self.host = host


class StrategiesRead(Message):
    def __init__(self, strategies: tuple[StrategyInfo, ...]) -> None:
        super().__init__()
        self.strategies = strategies


class InventoryPolled(Message):
    def __init__(
        self,
        snapshot: Snapshot,
        all_processes: bool,
        seconds: float,
        netns_names: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.all_processes = all_processes
        self.seconds = seconds  # how long the engine took, for the benchmark and the status line
        self.netns_names = dict(netns_names or {})  # namespace inode -> `ip netns` name


class CountersPolled(Message):
    def __init__(
        self,
        jails: tuple[JailInfo, ...],
        counters: tuple[JailCounters, ...],
        at: float,
        attempts: tuple[AttemptRow, ...] = (),
    ) -> None:
        super().__init__()
        self.jails = jails
        self.counters = counters
        self.attempts = attempts  # the attempts log's top rows, every jail
        self.at = at  # monotonic time of the read: rates divide by the real elapsed time


class TargetChecked(Message):
    """The engine confirmed the process can be blocked (same identity, not protected)."""

    def __init__(self, process: Process) -> None:
        super().__init__()
        self.process = process


class ProcessBlocked(Message):
    def __init__(self, request: BlockRequest, result: BlockResult) -> None:
        super().__init__()
        self.request = request
        self.result = result


class ProcessUnblocked(Message):
    def __init__(self, process: Process, result: UnblockResult) -> None:
        super().__init__()
        self.process = process
        self.result = result


class AllReleased(Message):
    def __init__(self, result: UnblockResult) -> None:
        super().__init__()
        self.result = result


class Launched(Message):
    """A command started jailed; its stdout and stderr go to `log`."""

    def __init__(self, request: LaunchRequest, result: LaunchResult, log: Path) -> None:
        super().__init__()
        self.request = request
        self.result = result
        self.log = log


class OwnerPreviewed(Message):
    """Every process a user/group block would affect right now."""

    def __init__(self, request: OwnerBlockRequest, processes: tuple[Process, ...]) -> None:
        super().__init__()
        self.request = request
        self.processes = processes


class OwnerBlocked(Message):
    def __init__(self, request: OwnerBlockRequest, result: BlockResult) -> None:
        super().__init__()
        self.request = request
        self.result = result


class RelaunchChecked(Message):
    """The process may be relaunched; `cwd` is where it runs (None: unreadable)."""

    def __init__(self, process: Process, cwd: str | None) -> None:
        super().__init__()
        self.process = process
        self.cwd = cwd


class Relaunched(Message):
    def __init__(self, process: Process, result: LaunchResult) -> None:
        super().__init__()
        self.process = process
        self.result = result
