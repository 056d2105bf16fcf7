"""What each jail strategy can do, so the CLI and the TUI offer only what applies."""

from __future__ import annotations

from netjail.backends.model import StrategyInfo

CGROUP = StrategyInfo(
    name="cgroup",
    description="move the process into a netjail cgroup; iptables -m cgroup drops what it sends, "
    "and rules for each socket it already had cover both directions",
    live_process=True,
    launch=False,
    allow_list=True,
    counters=True,
)

STRATEGIES: tuple[StrategyInfo, ...] = (CGROUP,)


def by_name(name: str) -> StrategyInfo | None:
    return next((s for s in STRATEGIES if s.name == name), None)
