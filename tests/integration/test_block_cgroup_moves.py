"""Moves between cgroups: the release goes to the nearest existing ancestor (issue 8 finding 9)
and a move never leaves a stranger behind when its target dies (finding 11)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends.errors import NoSuchProcess
from netjail.backends.jails import cgroups as jail_cgroups

from tests.conftest import CGROUP2, Peer
from tests.integration.test_block import CLI
from tests.integration.test_block_faults import cgroup_of


@pytest.fixture
def slice_dir() -> Iterator[Path]:
    """A test-made cgroup `/<unique>-slice/leaf` (what a user's service slice looks like)."""
    top = CGROUP2 / f"netjail-test-slice-{os.getpid()}"
    leaf = top / "leaf"
    leaf.mkdir(parents=True)
    yield leaf
    for d in (leaf, top):
        if d.is_dir():
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP2 / "cgroup.procs").write_text(pid)
            d.rmdir()


def test_unblock_after_the_original_cgroup_was_removed_goes_to_its_parent(
    cli: CLI, spawn_peer: Callable[..., Peer], slice_dir: Path
) -> None:
    peer = spawn_peer("sleep")
    (slice_dir / "cgroup.procs").write_text(str(peer.pid))
    leaf = "/" + str(slice_dir.relative_to(CGROUP2))
    assert cgroup_of(peer.pid) == leaf
    assert cli("block", str(peer.pid), "--jail", "gone").returncode == 0
    slice_dir.rmdir()  # empty now: its only process is in the jail
    out = cli("unblock", str(peer.pid))
    assert out.returncode == 0, out.stderr
    parent = leaf.rsplit("/", 1)[0]
    assert cgroup_of(peer.pid) == parent, "released to the root instead of the nearest ancestor"
    assert f"its cgroup {leaf} no longer exists; released to {parent}" in out.stderr


def test_move_process_of_a_vanished_target_moves_nothing(slice_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = proc.pid
    proc.wait()  # reaped: the PID names nobody (or soon someone else)
    rel = "/" + str(slice_dir.relative_to(CGROUP2))
    with pytest.raises(NoSuchProcess):
        jail_cgroups.move_process(CGROUP2, rel, pid, start_time=1)
    assert jail_cgroups.procs(CGROUP2, rel) == []


def test_move_process_refuses_a_pid_that_names_another_process(slice_dir: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        rel = "/" + str(slice_dir.relative_to(CGROUP2))
        with pytest.raises(NoSuchProcess):
            jail_cgroups.move_process(CGROUP2, rel, proc.pid, start_time=1)  # not its start time
        assert jail_cgroups.procs(CGROUP2, rel) == []
    finally:
        proc.kill()
        proc.wait()


def test_a_stranger_hit_by_a_write_after_its_target_died_goes_back(slice_dir: Path) -> None:
    """The repair step on its own, against the kernel: a process standing for the PID's next
    owner was moved by the write, the target (another start time) is dead: it returns to its
    parent's cgroup, where fork() started it."""
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        rel = "/" + str(slice_dir.relative_to(CGROUP2))
        mine = cgroup_of(os.getpid())
        jail_cgroups.move(CGROUP2, rel, stranger.pid)
        with pytest.raises(NoSuchProcess, match="went back"):
            jail_cgroups._after_death(CGROUP2, stranger.pid, start=1, where=rel)
        assert cgroup_of(stranger.pid) == mine
    finally:
        stranger.kill()
        stranger.wait()


def test_a_unit_tree_a_user_owns_is_not_where_a_jail_goes() -> None:
    """A user who owns a cgroup above the jail could move the jailed process back out (attack
    review: their user@UID.service): netjail keeps jails inside a unit only where every
    directory down to it, and its cgroup.procs, belong to root."""
    from netjail.backends.jails import cgroups as jail_cgroups
    from netjail.backends.system.cgroupfs import find_cgroup2

    found = find_cgroup2()
    assert found is not None
    mount = Path(found.path)
    base = mount / f"njtest-owned-{os.getpid()}"
    unit = base / "user@65534.service" / "app.scope"
    unit.mkdir(parents=True)
    try:
        rel = "/" + str(unit.relative_to(mount))
        assert jail_cgroups._only_root_may_change(rel)
        os.chown(base / "user@65534.service", 65534, 65534)  # what systemd does for user@.service
        assert not jail_cgroups._only_root_may_change(rel)
        os.chown(base / "user@65534.service", 0, 0)
        os.chown(unit / "cgroup.procs", 65534, 65534)
        assert not jail_cgroups._only_root_may_change(rel)
    finally:
        unit.rmdir()
        (base / "user@65534.service").rmdir()
        base.rmdir()


@pytest.fixture
def thread_root() -> Iterator[Path]:
    """netjail's cgroup parent made a thread root: a process in it and a threaded child beside
    `net-<inode>`. Every cgroup below it but that child is then "domain invalid" and refuses
    processes (EOPNOTSUPP)."""
    top = CGROUP2 / os.environ["NETJAIL_CGROUP_PARENT"]
    made = not top.is_dir()
    top.mkdir(exist_ok=True)
    holder = subprocess.Popen(["sleep", "1000"])
    (top / "cgroup.procs").write_text(str(holder.pid))
    (top / "threads").mkdir()
    (top / "threads" / "cgroup.type").write_text("threaded")
    try:
        yield top
    finally:
        holder.kill()
        holder.wait()
        (top / "threads").rmdir()
        if made:
            with contextlib.suppress(OSError):
                top.rmdir()


def test_a_block_the_kernel_refuses_the_jail_cgroup_for_fails_and_leaves_it_where_it_was(
    cli: CLI, spawn_peer: Callable[..., Peer], thread_root: Path
) -> None:
    """The move falls back to an ancestor that takes the process (right for a release): a block
    must not report success while its member is outside the jail's cgroup, where nothing
    matches the sockets it opens from then on."""
    assert (thread_root / "cgroup.type").read_text().strip() == "domain threaded"
    peer = spawn_peer("sleep")
    before = cgroup_of(peer.pid)
    out = cli("block", str(peer.pid), "--jail", "refused")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.splitlines() == [
        f"netjail: the kernel refused PID {peer.pid} in /{jail_cgroups.parent_name()}/refused/"
        f"{peer.pid}.{peer_start(peer.pid)} (only /{thread_root.name} took it): not jailed"
    ], out.stderr
    assert cgroup_of(peer.pid) == before, "the failed block left the process moved"
    assert list(thread_root.glob("**/refused")) == []
    assert "refused" not in cli("list").stdout


def peer_start(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
