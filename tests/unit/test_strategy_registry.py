"""The strategy registry (backends/jails/strategies/): one module per strategy behind one
interface, the names the state file uses, and the capabilities the CLI and the TUI offer from."""

from __future__ import annotations

from netjail.backends.jails import strategies
from netjail.backends.jails.state import JailState, StrategyName
from netjail.backends.jails.strategies.base import Strategy
from netjail.backends.jails.strategies.gid import GidState
from netjail.backends.jails.strategies.owner import OwnerState


def test_every_strategy_name_has_one_registered_module() -> None:
    assert [s.name for s in strategies.BY_NAME.values()] == [n.value for n in StrategyName]
    for name, kind in strategies.BY_NAME.items():
        assert isinstance(kind, Strategy)
        assert kind.name == kind.info.name == name
        assert strategies.strategy(StrategyName(name)) is kind


def test_launch_strategies_come_from_capabilities() -> None:
    assert strategies.LAUNCH_STRATEGIES == ("netns", "gid", "seccomp")
    assert [s.name for s in strategies.STRATEGIES if s.live_process] == ["cgroup", "owner"]
    assert [s.name for s in strategies.STRATEGIES if s.loopback_option] == ["gid"]
    assert [s.name for s in strategies.STRATEGIES if s.keep_option] == ["netns", "gid"]
    assert all(s.effect for s in strategies.STRATEGIES if s.launch)


def test_rules_follow_the_strategy() -> None:
    """seccomp has none (netfilter never sees it); owner selects by uid; gid by its group."""
    from netjail.backends.jails.rules import desired_rules

    assert desired_rules(JailState("s", StrategyName.SECCOMP), {}) is None
    owner = desired_rules(JailState("o", StrategyName.OWNER, detail=OwnerState(uid=1000)), {})
    assert owner is not None and {m.uid_owner for m in owner.out_selectors} == {1000}
    gid = desired_rules(JailState("g", StrategyName.GID, detail=GidState(gid=2000)), {})
    assert gid is not None and {(m.uid_owner, m.gid_owner) for m in gid.out_selectors} == {(None, 2000)}
    assert desired_rules(JailState("n", StrategyName.NETNS), {}) is None  # loopback only
