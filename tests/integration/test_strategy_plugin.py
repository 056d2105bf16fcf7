"""A strategy is a module plus a registry entry: a toy one, registered only here, has its jail
reconciled (its rules loaded from its selectors), listed, saved and read back with its own
state, and released and removed through the Strategy interface, with no change to the engine,
reconcile.py, rules.py or views.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from netjail.backends.firewall import default_firewall
from netjail.backends.firewall.base import Match
from netjail.backends.jails import strategies, views
from netjail.backends.jails.reconcile import Reconciler, members_of
from netjail.backends.jails.rules import FAMILIES
from netjail.backends.jails.state import JailState, Registry, Store, StrategyState, detail_of, file_template
from netjail.backends.jails.strategies.base import Strategy
from netjail.backends.model import StrategyInfo
from netjail.backends.system.inventory import Inventory


class ToyState(StrategyState):
    __slots__ = FIELDS = ("toy_gid",)

    def __init__(self, toy_gid: int = 0) -> None:
        self.toy_gid = toy_gid


class Toy(Strategy):
    name = "toy"  # type: ignore[assignment]  # not in StrategyName: registered by this test only
    info = StrategyInfo("toy", "drops what one group sends", False, False, True, False)
    state_type = ToyState
    outlives_members = True

    def __init__(self) -> None:
        self.removed: list[str] = []

    def selectors(self, jail: JailState) -> tuple[tuple[Match, ...], tuple[Match, ...]] | None:
        gid = detail_of(jail, ToyState).toy_gid
        return tuple(Match(fam, gid_owner=gid) for fam in FAMILIES), ()

    def link_label(self, jail: JailState) -> str:
        return f"toy:{detail_of(jail, ToyState).toy_gid}"

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        self.removed.append(jail.name)
        return [f"toy {jail.name} removed"]


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Toy:
    kind = Toy()
    monkeypatch.setitem(strategies.BY_NAME, "toy", kind)
    monkeypatch.setitem(strategies.STATE_TYPES, "toy", ToyState)
    return kind


@pytest.fixture
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_toy_strategy_works_through_the_interface_alone(toy: Toy, sleeper: int, tmp_path: Path) -> None:
    fw = default_firewall()
    name = f"toy{sleeper}"
    jail = JailState(name, "toy", members=members_of([sleeper]), detail=ToyState(4242))  # type: ignore[arg-type]
    reg = Registry({name: jail})
    try:
        rc = Reconciler(None, fw, Inventory())
        rc.run(reg)
        rules = fw.read_jail(name)
        assert rules is not None
        assert {(m.family, m.gid_owner) for m in rules.out_selectors} == {(f, 4242) for f in FAMILIES}

        info = views.jail_info(reg.jails[name], None)
        assert (info.strategy, info.link, info.countable) == ("toy", "toy:4242", False)

        store_dir = tmp_path / "toy-state"
        store_dir.mkdir(mode=0o700)
        store = Store(store_dir)
        with store.locked():
            store.save(reg)
        text = (store_dir / "state.json").read_text()
        assert '"toy_gid": 4242' in text and list(file_template())[-1] == "toy_gid"  # an added field, last
        back = Store(store_dir).load()
        assert not back.problems and back.jails[name] == jail and type(back.jails[name].detail) is ToyState

        notes = Reconciler(None, fw, Inventory()).release(reg, jail, list(jail.members), remove_jail=True)
        assert notes == [f"toy {name} removed"] and toy.removed == [name]
        assert name not in reg.jails and name not in fw.jail_names()
    finally:
        fw.remove_jail(name)
