"""What the CLI and the TUI may ask of the engine: the real one (engine.Engine), the TUI's test
double (tests/tui/fakes.py) and any other implementation type against this, and mypy checks
that they implement it. Each action's result carries its own notes (BlockResult.notes ...).

Imported for type checking only: the CLI does not pay for `typing` at run time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from netjail.backends.model import (
    BlockRequest,
    BlockResult,
    Check,
    HostInfo,
    JailCounters,
    JailInfo,
    LaunchRequest,
    LaunchResult,
    OwnerBlockRequest,
    Process,
    ResetResult,
    Snapshot,
    StrategyInfo,
    UnblockRequest,
    UnblockResult,
)

if TYPE_CHECKING:
    import subprocess

    from netjail.backends.attempts.store import AttemptRow
    from netjail.backends.engine_launch import Stdio


class EngineAPI(Protocol):
    # ---- reading ------------------------------------------------------------------------

    def host_info(self) -> HostInfo: ...

    def strategies(self) -> tuple[StrategyInfo, ...]:
        """Every strategy with its capabilities: the UIs offer what applies from these."""
        ...

    def doctor(self) -> tuple[Check, ...]: ...

    def snapshot(self, *, all_processes: bool = True) -> Snapshot: ...

    def check_target(self, pid: int, start_time: int | None = None, force: bool = False) -> Process: ...

    def require_root(self, what: str) -> None:
        """InsufficientPrivilege (exit 3) naming `what`, unless this may act."""
        ...

    def reconcile(self) -> list[str]:
        """Bring registry and kernel in line; returns what was found and repaired."""
        ...

    def jails(
        self, *, reconcile: bool = True, counters: Sequence[JailCounters] | None = None
    ) -> tuple[JailInfo, ...]: ...

    def counters(self) -> tuple[JailCounters, ...]: ...

    def attempts(self, *, jail: str | None = None, limit: int = 200) -> tuple[AttemptRow, ...]:
        """The attempts log (docs/attempts.md): destinations tried, most attempted first."""
        ...

    def preview_owner(
        self, user: str | None = None, group: str | None = None, force: bool = False
    ) -> tuple[Process, ...]: ...

    def launch_log_path(self, jail: str) -> Path: ...

    # ---- acting -------------------------------------------------------------------------

    def block(self, req: BlockRequest) -> BlockResult: ...

    def block_owner(self, req: OwnerBlockRequest, force: bool = False) -> BlockResult: ...

    def unblock(self, req: UnblockRequest) -> UnblockResult: ...

    def reset(self) -> ResetResult: ...

    def launch(
        self,
        req: LaunchRequest,
        *,
        stdin: Stdio = None,
        stdout: Stdio = None,
        stderr: Stdio = None,
        detached: bool = False,
    ) -> tuple[LaunchResult, subprocess.Popen[bytes]]: ...

    def run(self, req: LaunchRequest) -> LaunchResult: ...

    def relaunch(
        self, pid: int, start_time: int | None, req: LaunchRequest, force: bool = False
    ) -> LaunchResult: ...
