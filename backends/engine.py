"""The one engine API the CLI and the TUI share. Plain-data requests in, plain-data results out.

(Work in progress: method bodies land with the jail work; signatures are the contract.)
"""

from __future__ import annotations

from pathlib import Path

from netjail.backends.model import (
    BlockRequest,
    BlockResult,
    Check,
    HostInfo,
    JailCounters,
    JailInfo,
    Process,
    ResetResult,
    Snapshot,
    StrategyInfo,
    UnblockRequest,
    UnblockResult,
)


class Engine:
    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir

    def host_info(self) -> HostInfo:
        raise NotImplementedError

    def snapshot(self, *, all_processes: bool = True) -> Snapshot:
        """Processes and sockets, labelled with their jail; incremental across calls."""
        raise NotImplementedError

    def check_target(self, pid: int, start_time: int | None = None, force: bool = False) -> Process:
        """Validate a block target (exists, same identity, not protected) without acting."""
        raise NotImplementedError

    def strategies(self) -> tuple[StrategyInfo, ...]:
        raise NotImplementedError

    def block(self, req: BlockRequest) -> BlockResult:
        raise NotImplementedError

    def unblock(self, req: UnblockRequest) -> UnblockResult:
        raise NotImplementedError

    def jails(self) -> tuple[JailInfo, ...]:
        raise NotImplementedError

    def counters(self) -> tuple[JailCounters, ...]:
        raise NotImplementedError

    def reset(self) -> ResetResult:
        raise NotImplementedError

    def doctor(self) -> tuple[Check, ...]:
        raise NotImplementedError
