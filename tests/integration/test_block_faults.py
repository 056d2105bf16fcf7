"""Crash safety: a netjail killed at any step of `block`, a concurrent iptables writer, a
truncated state file."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from netjail.backends.jails import cgroups as jail_cgroups

from tests import firewall_probe
from tests.conftest import CGROUP2, Peer
from tests.firewall_probe import netjail_left
from tests.integration.test_block import CLI, jails, legacy_rules, rises, settle_count

# another writer empties the jail's outgoing chain (the allow entries and the final drop)
FLUSH_OUT_CHAIN = {
    "iptables": lambda jail: ["iptables-legacy", "-w", "-F", f"NJ-O-{jail}"],
    "nftables": lambda jail: ["nft", "flush", "chain", "inet", "netjail", f"nj-o-{jail}"],
}


def cgroup_of(pid: int) -> str:
    return next(
        line[3:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::")
    )


@pytest.mark.parametrize("step", ["pending", "cgroup", "rules", "move", "rescan"])
def test_killed_mid_block_leaves_nothing(cli: CLI, spawn_peer: Callable[..., Peer], step: str) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    origin = cgroup_of(sender.pid)
    out = cli("block", str(sender.pid), "--jail", "crash", env={"NETJAIL_FAULT_AT": step})
    assert out.returncode == -9, (out.returncode, out.stderr)

    out = cli("list", "--json")  # the next command reconciles
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
    assert "rolled back" in out.stderr
    assert netjail_left() == []
    assert not (CGROUP2 / jail_cgroups.jail_path("crash").lstrip("/")).exists()
    assert cgroup_of(sender.pid) == origin
    assert rises(recv, "received")


def test_killed_after_the_last_step_leaves_the_full_jail(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    out = cli("block", str(sender.pid), "--jail", "crash", env={"NETJAIL_FAULT_AT": "done"})
    assert out.returncode == -9
    [only] = jails(cli)
    assert only["name"] == "crash" and [m["pid"] for m in only["members"]] == [sender.pid]
    assert cgroup_of(sender.pid).startswith(jail_cgroups.jail_path("crash") + f"/{sender.pid}.")
    frozen = settle_count(recv, "received")
    assert recv.value("received") == frozen


def test_truncated_state_is_rebuilt_from_the_kernel(
    cli: CLI, spawn_peer: Callable[..., Peer], state_dir: Path
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    assert cli("block", str(sender.pid), "--jail", "keep", "--allow", "10.9.0.0/16").returncode == 0
    state = state_dir / "state.json"
    state.write_text(state.read_text()[:40])
    out = cli("list", "--json")
    assert out.returncode == 0, out.stderr
    assert "corrupt" in out.stderr
    [rebuilt] = json.loads(out.stdout)
    assert rebuilt["name"] == "keep" and rebuilt["allow"] == ["10.9.0.0/16"]
    assert [m["pid"] for m in rebuilt["members"]] == [sender.pid]
    frozen = settle_count(recv, "received")
    assert recv.value("received") == frozen, "a corrupt state file released the jail"
    assert cli("unblock", "--jail", "keep").returncode == 0
    assert rises(recv, "received")


@pytest.mark.backend("iptables")  # libiptc rewrites a whole table: a foreign commit must survive it
def test_concurrent_iptables_writer_loses_nothing(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    peers = [spawn_peer("udp-bind", "127.0.0.1", 0) for _ in range(4)]
    errors: list[str] = []

    def foreign_writer() -> None:
        for i in range(60):
            r = subprocess.run(
                [
                    "iptables-legacy",
                    "-w",
                    "-A",
                    "OUTPUT",
                    "-p",
                    "tcp",
                    "--dport",
                    str(20000 + i),
                    "-j",
                    "ACCEPT",
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                errors.append(r.stderr)

    writer = threading.Thread(target=foreign_writer)
    writer.start()
    try:
        for i, p in enumerate(peers):
            out = cli("block", str(p.pid), "--jail", f"c{i}")
            assert out.returncode == 0, out.stderr
        assert cli("unblock", str(peers[0].pid)).returncode == 0
    finally:
        writer.join()
    assert errors == []
    rules = legacy_rules()
    for i in range(60):
        assert f"--dport {20000 + i} -j ACCEPT" in rules
    assert sorted(j["name"] for j in jails(cli)) == ["c1", "c2", "c3"]
    for i in (1, 2, 3):
        assert f":NJ-O-c{i}" in rules
        assert f"-A NJ-O-c{i} -j DROP" in rules
    assert "NJ-O-c0" not in rules
    for i in range(60):
        subprocess.run(
            ["iptables-legacy", "-w", "-D", "OUTPUT", "-p", "tcp", "--dport", str(20000 + i), "-j", "ACCEPT"],
            check=True,
        )


def test_unblock_restores_original_cgroup(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    peer = spawn_peer("sleep")
    origin = cgroup_of(peer.pid)
    assert cli("block", str(peer.pid), "--jail", "back").returncode == 0
    assert cgroup_of(peer.pid).startswith(jail_cgroups.jail_path("back") + "/")
    assert cli("unblock", "--all").returncode == 0
    assert cgroup_of(peer.pid) == origin
    assert not (CGROUP2 / jail_cgroups.jail_path("back").lstrip("/")).exists()
    assert os.path.exists(f"/proc/{peer.pid}")  # still running, unjailed


def test_escaped_member_and_recreated_cgroup_are_rejailed(cli: CLI, spawn_peer: Callable[..., Peer]) -> None:
    """Someone moves the member out, then re-creates the jail's cgroup: the old `-m cgroup` rule
    no longer matches the new cgroup (docs/kernel-facts.md #3); reconciliation must reload it."""
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send-fresh", "127.0.0.1", recv.info["lport"])
    quiet_watcher = {"NETJAIL_WATCH_INTERVAL": "3600"}  # this test plays the watcher's part
    assert cli("block", str(sender.pid), "--jail", "redo", env=quiet_watcher).returncode == 0

    jail_dir = CGROUP2 / cgroup_of(sender.pid).lstrip("/")
    (CGROUP2 / "cgroup.procs").write_text(str(sender.pid))
    assert rises(recv, "received"), "moved out of the jail, fresh sockets should pass"
    out = cli("list", "--json")
    assert "moved back" in out.stderr, out.stderr
    frozen = settle_count(recv, "received")
    assert recv.value("received") == frozen

    (CGROUP2 / "cgroup.procs").write_text(str(sender.pid))
    jail_dir.rmdir()
    jail_dir.mkdir()
    assert rises(recv, "received")
    out = cli("list", "--json")
    assert out.returncode == 0, out.stderr
    assert "re-created" in out.stderr, out.stderr
    assert CGROUP2 / cgroup_of(sender.pid).lstrip("/") == jail_dir
    frozen = settle_count(recv, "received")
    assert recv.value("received") == frozen, "the reloaded cgroup rule does not drop"


def test_a_long_lived_engine_repairs_rules_changed_after_its_last_check(
    spawn_peer: Callable[..., Peer], state_dir: Path
) -> None:
    """The watcher's engine skips a sync whose rules it verified, while the tables' digests
    are unchanged: a chain flushed behind its back changes them, so the next pass restores it."""
    from netjail.backends.engine import Engine
    from netjail.backends.model import BlockRequest

    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    engine = Engine(state_dir, spawn_watcher=False)
    engine.block(BlockRequest(sender.pid, jail="kept"))
    engine.reconcile()  # verified: the next pass with nothing changed is skipped
    frozen = settle_count(recv, "received")
    subprocess.run(FLUSH_OUT_CHAIN[firewall_probe.backend()]("kept"), check=True)
    assert rises(recv, "received"), "the flushed chain should let it out"
    engine.reconcile()
    assert firewall_probe.has_rules("kept")
    frozen = settle_count(recv, "received")
    assert recv.value("received") == frozen, "the repaired chain does not drop"
    engine.reset()
