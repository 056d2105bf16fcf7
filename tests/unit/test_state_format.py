"""state.json stays the format netjail wrote before strategies and member statuses became
enums: the file in this folder was written by that code (commit 43585db), every strategy and
status in it. A file the old code wrote loads and saves back byte for byte, and what the new
code builds saves to the same bytes, so either version reads the other's file."""

from __future__ import annotations

import shutil
from pathlib import Path

from netjail.backends.jails.state import (
    JailState,
    MemberState,
    MemberStatus,
    Registry,
    Store,
    StrategyName,
)
from netjail.backends.jails.strategies.cgroup import CgroupState
from netjail.backends.jails.strategies.gid import GidState
from netjail.backends.jails.strategies.netns import NetnsState
from netjail.backends.jails.strategies.owner import OwnerState

OLD = Path(__file__).with_name("state_schema1.json")
# fields added since that commit, each with the value an old file's jail gets: a new file holds
# them too (the old code would call such a file corrupt and rebuild it from the kernel)
JAIL_ADDED = {"queued": []}
# and the file's own: an old file's jails were made by the one backend there was
ADDED = {**JAIL_ADDED, "backend": "iptables"}


def without_added(text: str) -> str:
    """`text` with the added fields' lines taken out, when they hold their default."""
    import json

    lines = text.splitlines(keepends=True)
    drop = {f'"{k}": {json.dumps(v)},' for k, v in ADDED.items()}
    return "".join(line for line in lines if line.strip() not in drop)


def built() -> Registry:
    """The registry the old file holds, built as the code builds jails now."""
    m, s = MemberStatus, StrategyName
    return Registry(
        {
            "web": JailState(
                "web",
                s.CGROUP,
                allow=["10.0.0.1/32:443"],
                detail=CgroupState("netjail/web", 7, {"netjail/web/12": 8}),
                pre_inodes=[99],
                members=[
                    MemberState(
                        12, 345, "curl", "/user.slice", root=12, cgroup="netjail/web/12", status=m.PENDING
                    )
                ],
                mark=3,
                mark_mask=240,
                marks=[[99, 0]],
                mark_foreign=[5],
                created_at=1.5,
            ),
            "u": JailState(
                "u",
                s.OWNER,
                detail=OwnerState(uid=1000),
                members=[MemberState(13, 1, "sh", status=m.RELEASING)],
            ),
            "n": JailState(
                "n",
                s.NETNS,
                keep=True,
                detail=NetnsState(
                    netns="n",
                    forwarding_before=[False, True],
                    link="pasta",
                    pasta_pid=40,
                    pasta_start=41,
                    pasta_cgroup="netjail/n-pasta",
                ),
                members=[MemberState(14, 2, "netjail", status=m.LAUNCHER)],
            ),
            "g": JailState("g", s.GID, detail=GidState(gid=2000, group_created=True), allow_loopback=True),
            "s": JailState("s", s.SECCOMP),
        },
        backend="iptables",
    )


def test_an_old_file_loads_as_enums_and_saves_back_unchanged(tmp_path: Path) -> None:
    shutil.copy(OLD, tmp_path / "state.json")
    tmp_path.chmod(0o700)
    reg = Store(tmp_path).load()
    assert not reg.problems
    assert {j.name: j.strategy for j in reg.jails.values()} == {
        "web": StrategyName.CGROUP,
        "u": StrategyName.OWNER,
        "n": StrategyName.NETNS,
        "g": StrategyName.GID,
        "s": StrategyName.SECCOMP,
    }
    assert all(type(j.strategy) is StrategyName for j in reg.jails.values())
    statuses = [mem.status for j in reg.jails.values() for mem in j.members]
    assert statuses == [MemberStatus.PENDING, MemberStatus.RELEASING, MemberStatus.LAUNCHER]
    assert all(type(st) is MemberStatus for st in statuses)
    assert reg.backend == "iptables"  # the jails of a file that names no backend were made by it
    assert without_added(reg.to_json() + "\n") == OLD.read_text()


def test_what_the_new_code_writes_is_the_old_format() -> None:
    assert without_added(built().to_json() + "\n") == OLD.read_text()


def test_the_json_fallback_writes_the_same_values() -> None:
    """The stdlib writer (names that are not UTF-8) writes enums as their plain strings."""
    import json

    from netjail.backends.jails import state

    doc = json.loads(json.dumps({"jails": list(built().jails.values())}, default=state._fields))
    old = json.loads(OLD.read_text())["jails"]
    assert [{**JAIL_ADDED, **j} for j in old] == doc["jails"]


def test_an_unknown_strategy_is_a_corrupt_file_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(OLD.read_text().replace('"seccomp"', '"bogus"'))
    tmp_path.chmod(0o700)
    reg = Store(tmp_path).load()
    assert reg.jails == {}
    assert reg.problems
