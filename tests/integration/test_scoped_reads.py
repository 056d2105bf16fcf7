"""block, unblock and reconciliation read only the processes they act on: no system-wide pass
while only cgroup jails exist, and every safety check still refuses what it refused."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from netjail.backends.engine import Engine
from netjail.backends.errors import ProtectedProcess
from netjail.backends.model import BlockRequest, OwnerBlockRequest, Process, Snapshot, UnblockRequest
from netjail.backends.system.inventory import Inventory

from tests.conftest import Peer


class CountingInventory(Inventory):
    def __init__(self) -> None:
        super().__init__()
        self.snapshots = 0
        self.looked_up: set[int] = set()

    def snapshot(self, all_processes: bool = True) -> Snapshot:
        self.snapshots += 1
        return super().snapshot(all_processes)

    def lookup_many(self, pids: Iterable[int], with_sockets: bool = True) -> dict[int, Process]:
        pids = list(pids)
        self.looked_up.update(pids)
        return super().lookup_many(pids, with_sockets)


def test_block_tree_and_unblock_read_only_their_processes(
    spawn_peer: Callable[..., Peer], state_dir: Path
) -> None:
    other = spawn_peer("udp-bind", "127.0.0.1", 0)  # a bystander with a socket
    parent = spawn_peer("udp-send-child", "127.0.0.1", 9)
    child = int(parent.info["child_pid"])  # type: ignore[call-overload]
    inv = CountingInventory()
    engine = Engine(state_dir, inventory=inv, spawn_watcher=False)
    result = engine.block(BlockRequest(parent.pid, tree=True, jail="scoped"))
    assert {m.pid for m in result.members} == {parent.pid, child}
    assert result.marked_sockets > 0  # the child's existing UDP socket was found and covered
    assert inv.snapshots == 0, "block took a system-wide snapshot"
    # the target (its safety checks); the tree's sockets come from the marking pass itself
    assert parent.pid in inv.looked_up and inv.looked_up <= {parent.pid, child}
    assert other.pid not in inv.looked_up
    engine.reconcile()  # what every later command and the watcher do
    assert inv.snapshots == 0
    engine.unblock(UnblockRequest(pid=parent.pid))
    assert inv.snapshots == 0 and other.pid not in inv.looked_up


def test_an_owner_jail_still_makes_reconciliation_see_every_process(
    spawn_peer: Callable[..., Peer], state_dir: Path
) -> None:
    """owner jails are about any process of their user: scoping must not hide those."""
    spawn_peer("udp-bind", "127.0.0.1", 0, user="nobody")
    inv = CountingInventory()
    engine = Engine(state_dir, inventory=inv, spawn_watcher=False)
    engine.block_owner(OwnerBlockRequest(user="nobody", jail="who"))
    before = inv.snapshots
    engine.reconcile()
    assert inv.snapshots == before + 1
    engine.unblock(UnblockRequest(jail="who"))


def test_safety_checks_hold_with_scoped_reads(state_dir: Path) -> None:
    engine = Engine(state_dir, inventory=CountingInventory(), spawn_watcher=False)
    with pytest.raises(ProtectedProcess, match="PID 1"):
        engine.block(BlockRequest(1))
    with pytest.raises(ProtectedProcess, match="netjail itself"):
        engine.block(BlockRequest(os.getpid()))
    with pytest.raises(ProtectedProcess, match="ancestor"):
        engine.block(BlockRequest(os.getppid()))
    assert engine.jails() == ()


def test_block_and_unblock_work_with_more_than_1024_fds_open(
    spawn_peer: Callable[..., Peer], state_dir: Path
) -> None:
    """An engine holding many fds (a TUI or agent; duplicates of a big server's sockets) gets
    pidfds numbered above 1023, which select() cannot take: the attack review's finding."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        peer = spawn_peer("udp-bind", "127.0.0.1", 0)
        engine = Engine(state_dir, spawn_watcher=False)
        result = engine.block(BlockRequest(peer.pid, jail="manyfds"))
        assert [m.pid for m in result.members] == [peer.pid]
        engine.unblock(UnblockRequest(pid=peer.pid))
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
