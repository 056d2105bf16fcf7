"""seccomp: a command launched with socket() refused for network families (launch/seccomp_filter).
Netfilter never sees it: no rules, nothing counted, and the filter cannot be lifted."""

from __future__ import annotations

from netjail.backends.jails.state import LAUNCHER, JailState, MemberState, Registry, StrategyName
from netjail.backends.jails.strategies.base import Strategy
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netjail.backends.engine_launch import Launches
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import LaunchRequest, Process


class Seccomp(Strategy):
    name = StrategyName.SECCOMP
    info = StrategyInfo(
        name="seccomp",
        description="run with socket() refused (EACCES) for network families; no root needed; "
        "netfilter never sees it, so nothing is counted",
        live_process=False,
        launch=True,
        allow_list=False,
        counters=False,
        effect="with network sockets refused (seccomp)",
    )

    launch_needs_root = False
    spawn_seccomp = True

    def check_launch(self, launches: Launches, req: LaunchRequest, allow: list[str]) -> None:
        super().check_launch(launches, req, allow)
        if allow:
            from netjail.backends.errors import BadInput

            raise BadInput(
                "seccomp refuses every network socket: it has no allow-list (use --netns or --gid)"
            )

    def found_pids(
        self, rc: Reconciler, jail: JailState, alive: list[MemberState], procs: Mapping[int, Process]
    ) -> list[int]:
        """The filter is inherited by every descendant (not by the launcher's)."""
        found: set[int] = set()
        frontier = {m.pid for m in alive if m.status != LAUNCHER}
        while frontier:
            frontier = {pid for pid, p in procs.items() if p.ppid in frontier and pid not in found}
            found |= frontier
        return sorted(found)

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        from netjail.backends.jails.reconcile import is_alive

        left = [m.pid for m in jail.members if is_alive(m) and m.status != LAUNCHER]
        if not left:
            return []
        return [
            f"jail {jail.name!r}: a seccomp filter cannot be lifted; PID(s) "
            f"{', '.join(map(str, left))} keep it until they exit"
        ]


STRATEGY = Seccomp()
