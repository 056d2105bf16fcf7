"""The jail strategies, one module each (base.py is the interface they implement), and the
registry the engine, the CLI and the TUI look them up in: a new strategy is a module here
plus its line in STRATEGY_MODULES (and its name in state.StrategyName)."""

from __future__ import annotations

from netjail.backends.jails.state import StrategyName, StrategyState
from netjail.backends.jails.strategies import cgroup, gid, netns, owner, seccomp
from netjail.backends.jails.strategies.base import Strategy
from netjail.backends.model import StrategyInfo

# In the order the UIs list them. Adoption asks each whether kernel objects without state are
# its own; their claims exclude each other (Strategy.adopt), so the order does not matter there.
STRATEGY_MODULES = (cgroup, owner, netns, gid, seccomp)
BY_NAME: dict[str, Strategy] = {m.STRATEGY.name: m.STRATEGY for m in STRATEGY_MODULES}
STATE_TYPES: dict[str, type[StrategyState]] = {name: s.state_type for name, s in BY_NAME.items()}

STRATEGIES: tuple[StrategyInfo, ...] = tuple(s.info for s in BY_NAME.values())
LAUNCH_STRATEGIES = tuple(s.name for s in STRATEGIES if s.launch)


def strategy(name: StrategyName | str) -> Strategy:
    """The strategy a jail of the state file names (the file was checked on load)."""
    return BY_NAME[name]


def by_name(name: str) -> StrategyInfo | None:
    found = BY_NAME.get(name)
    return found.info if found else None
