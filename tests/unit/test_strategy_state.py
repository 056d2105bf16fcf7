"""Each strategy's own state (JailState.detail, a class its module owns) goes to state.json as
the flat schema-1 record and comes back as that class, with its values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from netjail.backends.jails import strategies
from netjail.backends.jails.state import JailState, MemberState, Registry, Store, file_template

# values other than the defaults for every field of each strategy's state: a strategy added
# without a line here fails test_every_strategy_has_a_sample
SAMPLES: dict[str, dict[str, Any]] = {
    "cgroup": {"cgroup": "netjail/c", "cgroup_inode": 7, "cgroups": {"netjail/c/12": 8}},
    "owner": {"uid": 1000, "gid": None},
    "netns": {
        "netns": "n",
        "veth": "nj-n",
        "forwarding_before": [False, True],
        "link": "veth",
        "pasta_pid": 40,
        "pasta_start": 41,
        "pasta_cgroup": "netjail/n-pasta",
    },
    "gid": {"gid": 2000, "group_created": True},
    "seccomp": {},
}


def test_every_strategy_has_a_sample() -> None:
    assert set(SAMPLES) == set(strategies.BY_NAME)
    for name, kind in strategies.BY_NAME.items():
        assert set(SAMPLES[name]) == set(kind.state_type.FIELDS), name


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_strategys_state_round_trips_through_the_file(tmp_path: Path, name: str) -> None:
    kind = strategies.strategy(name)
    detail = kind.state_type()
    for key, value in SAMPLES[name].items():
        setattr(detail, key, value)
    jail = JailState("j", kind.name, allow=["10.0.0.0/8"], members=[MemberState(5, 6)], detail=detail)
    assert JailState("j", kind.name).detail == kind.state_type()  # a new jail gets its defaults
    tmp_path.chmod(0o700)
    store = Store(tmp_path)
    with store.locked():
        store.save(Registry({"j": jail}))
    (record,) = json.loads((tmp_path / "state.json").read_text())["jails"]
    # flat, every strategy's field beside the jail's own, in schema 1's order
    assert list(record) == list(file_template())
    assert {k: record[k] for k in SAMPLES[name]} == SAMPLES[name]
    back = Store(tmp_path).load().jails["j"]
    assert type(back.detail) is kind.state_type
    assert back == jail


def test_another_strategys_fields_in_a_record_are_dropped_not_mixed_in(tmp_path: Path) -> None:
    """Every record holds every strategy's fields: a cgroup jail's `uid` is not its state."""
    tmp_path.chmod(0o700)
    rec = {**file_template(), "name": "c", "strategy": "cgroup", "members": [], "uid": 1000}
    (tmp_path / "state.json").write_text(json.dumps({"schema": 1, "jails": [rec]}))
    reg = Store(tmp_path).load()
    assert not reg.problems
    assert "uid" not in reg.jails["c"].detail.record()
