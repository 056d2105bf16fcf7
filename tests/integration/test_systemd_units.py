"""netjail on a host run by systemd (issue 10 A): a unit's processes are never taken out of it.

Everything runs inside a container with a real systemd as PID 1 and a network namespace of its
own (systemd_host.py): services and scopes are started with systemd-run, traffic goes over the
container's loopback and is counted at the receiver.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests import firewall_probe
from tests.conftest import PEERS, Peer
from tests.integration.systemd_host import SystemdHost

CG = "/sys/fs/cgroup/unified"


@pytest.fixture
def host(systemd_host: SystemdHost) -> Iterator[SystemdHost]:
    yield systemd_host
    out = systemd_host.netjail("reset")
    assert out.returncode == 0, out.stderr
    systemd_host.sh("systemctl stop 'njt-*' 2>/dev/null; systemctl reset-failed 2>/dev/null", check=False)


def receiver(host: SystemdHost, port: int) -> Peer:
    proc = host.popen(host.python, str(PEERS), "udp-recv", "127.0.0.1", str(port))
    peer = Peer(proc)
    threading.Thread(target=peer._read, daemon=True).start()
    peer.wait_ready()
    return peer


def sender(port: int) -> str:
    return f"{PEERS} udp-send 127.0.0.1 {port} --interval 0.02"


def received_rises(peer: Peer, wait: float = 0.6) -> bool:
    before = peer.value("received")
    time.sleep(wait)
    return peer.value("received") > before + 3


def main_pid(host: SystemdHost, unit: str) -> int:
    end = time.monotonic() + 10
    while (pid := int(host.run("systemctl", "show", "-P", "MainPID", unit).stdout)) == 0:
        assert time.monotonic() < end, f"{unit} has no main PID"
        time.sleep(0.05)
    return pid


def children(host: SystemdHost, pid: int, n: int) -> list[int]:
    end = time.monotonic() + 10
    while len(found := host.sh(f"pgrep -P {pid} || true").split()) < n:
        assert time.monotonic() < end, f"PID {pid} has {found}, not {n} children"
        time.sleep(0.05)
    return [int(p) for p in found]


def scope_procs(host: SystemdHost, unit: str) -> list[int]:
    cgroup = host.run("systemctl", "show", "-P", "ControlGroup", unit, check=False).stdout.strip()
    return (
        [int(p) for p in host.sh(f"cat {CG}{cgroup}/cgroup.procs 2>/dev/null || true").split()]
        if cgroup
        else []
    )


def alive(host: SystemdHost, pid: int) -> bool:
    return host.run("test", "-d", f"/proc/{pid}", check=False).returncode == 0


def notes_once(host: SystemdHost, done: Callable[[], bool], timeout: float = 5) -> str:
    """Wait for the watcher (a reconciliation every second) or a `list` that reconciles itself
    to have done something; returns every note either printed."""
    end = time.monotonic() + timeout
    while True:
        out = host.netjail("list")
        assert out.returncode == 0, out.stderr
        notes = out.stderr + host.sh("cat /run/netjail/net-*/watcher.log 2>/dev/null || true")
        if done():
            return notes
        assert time.monotonic() < end, f"not reconciled after {timeout}s: {notes}"
        time.sleep(0.2)


def netjail_cgroups(host: SystemdHost) -> list[str]:
    return host.sh(f"find {CG} -mindepth 1 -type d -name '*net-[0-9]*' -o -type d -name netjail").split()


def test_a_service_tree_stays_in_its_unit_and_goes_with_it(host: SystemdHost) -> None:
    peer = receiver(host, 7101)
    cmd = f"{host.python} {sender(7101)} & {host.python} {sender(7101)} & wait"
    host.run("systemd-run", "--unit=njt-svc", "/bin/sh", "-c", cmd)
    main = main_pid(host, "njt-svc.service")
    kids = children(host, main, 2)
    assert received_rises(peer)

    out = host.netjail("block", str(main), "--tree", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    unit_cg = "/system.slice/njt-svc.service"
    assert result["unit"] == "njt-svc.service"
    assert result["cgroup"].startswith(f"{unit_cg}/netjail-net-"), result
    assert not received_rises(peer), "the service's traffic still arrives"
    for pid in [main, *kids]:
        assert host.cgroup_of(pid) == result["cgroup"]
    status = host.run("systemctl", "status", "--no-pager", "njt-svc.service", check=False).stdout
    for pid in [main, *kids]:
        assert f"─{pid} " in status, status  # systemd still lists them under the unit

    host.run("systemctl", "stop", "njt-svc.service")
    assert not [pid for pid in [main, *kids] if alive(host, pid)], "systemctl stop left processes"
    notes = notes_once(host, lambda: netjail_cgroups(host) == [])
    assert "removed: all its processes exited (systemd stopped njt-svc.service" in notes, notes
    assert firewall_probe.netjail_left(in_host(host)) == []


def test_a_restarted_service_is_not_jailed_and_not_fought(host: SystemdHost) -> None:
    peer = receiver(host, 7102)
    host.run(
        "systemd-run", "--unit=njt-restart", "-p", "Restart=always", "-p", "RestartSec=100ms",
        host.python, *sender(7102).split(),
    )  # fmt: skip
    first = main_pid(host, "njt-restart.service")
    out = host.netjail("block", str(first))
    assert out.returncode == 0, out.stderr
    assert "belongs to njt-restart.service: jailed inside it" in out.stdout
    assert not received_rises(peer)

    host.run("kill", "-9", str(first))  # systemd restarts the unit: a new process, a new cgroup
    end = time.monotonic() + 10
    while (second := main_pid(host, "njt-restart.service")) == first:
        assert time.monotonic() < end
        time.sleep(0.05)
    notes = notes_once(host, lambda: netjail_cgroups(host) == [])
    assert "removed: all its processes exited (systemd stopped njt-restart.service" in notes, notes
    assert host.cgroup_of(second) == "/system.slice/njt-restart.service"
    assert received_rises(peer), "the restarted service is jailed"
    for _ in range(3):  # reconciliation leaves the new incarnation alone
        assert host.netjail("list").returncode == 0
    assert host.run("systemctl", "show", "-P", "NRestarts", "njt-restart.service").stdout.strip() == "1"
    assert main_pid(host, "njt-restart.service") == second
    assert netjail_cgroups(host) == []


def test_one_process_of_a_shared_scope_is_jailed_alone_and_put_back(host: SystemdHost) -> None:
    jailed_peer, sibling_peer = receiver(host, 7103), receiver(host, 7104)
    cmd = f"{host.python} {sender(7103)} & {host.python} {sender(7104)} & wait"
    scope = host.popen("systemd-run", "--scope", "--unit=njt-scope", "/bin/sh", "-c", cmd)
    end = time.monotonic() + 10
    while len(procs := scope_procs(host, "njt-scope.scope")) < 3:  # the shell and its two senders
        assert time.monotonic() < end, procs
        time.sleep(0.05)
    cmdlines = {pid: host.sh(f"tr '\\0' ' ' < /proc/{pid}/cmdline") for pid in procs}
    shell = next(pid for pid, cmd in cmdlines.items() if cmd.startswith("/bin/sh"))
    target = next(p for p, cmd in cmdlines.items() if p != shell and "udp-send 127.0.0.1 7103" in cmd)
    scope_cg = host.cgroup_of(target)
    assert scope_cg.endswith("/njt-scope.scope"), scope_cg

    out = host.netjail("block", str(target))
    assert out.returncode == 0, out.stderr
    assert not received_rises(jailed_peer)
    assert received_rises(sibling_peer), "a sibling in the same scope lost its traffic"
    assert host.cgroup_of(target).startswith(f"{scope_cg}/netjail-net-")

    out = host.netjail("ps", "--all", "--json")
    units = {p["pid"]: p["unit"] for p in json.loads(out.stdout)}
    assert units[target] == units[shell] == "njt-scope.scope"
    assert units[1] == "init.scope"
    assert units[main_pid(host, "systemd-journald.service")] == "systemd-journald.service"

    out = host.netjail("unblock", str(target))
    assert out.returncode == 0, out.stderr
    assert host.cgroup_of(target) == scope_cg
    assert received_rises(jailed_peer)
    assert netjail_cgroups(host) == []
    scope.kill()


def test_a_delegated_units_process_stays_in_the_cgroup_the_unit_made(host: SystemdHost) -> None:
    host.run("systemd-run", "--unit=njt-dlg", "-p", "Delegate=yes", "/bin/sleep", "1000")
    pid = main_pid(host, "njt-dlg.service")
    unit_cg = host.cgroup_of(pid)
    # what a delegated unit does with its subtree (a container manager): its own sub-cgroup
    host.sh(f"mkdir {CG}{unit_cg}/payload && echo {pid} > {CG}{unit_cg}/payload/cgroup.procs")
    out = host.netjail("block", str(pid))
    assert out.returncode == 0, out.stderr
    assert host.cgroup_of(pid).startswith(f"{unit_cg}/payload/netjail-net-")
    assert "belongs to njt-dlg.service" in out.stdout
    doctor = {c["name"]: c for c in json.loads(host.netjail("doctor", "--json").stdout)}
    assert "systemd manages the cgroup tree" in doctor["pid1"]["detail"]
    assert "delegated units (Delegate=): njt-dlg.service" in doctor["pid1"]["detail"], doctor["pid1"]
    out = host.netjail("unblock", str(pid))
    assert out.returncode == 0, out.stderr
    assert host.cgroup_of(pid) == f"{unit_cg}/payload"
    assert netjail_cgroups(host) == []


def in_host(host: SystemdHost) -> firewall_probe.Run:
    return lambda argv: host.run(*argv, check=False)


def gates(host: SystemdHost) -> list[str]:
    """The cgroup paths of the jails' outgoing selectors inside the container."""
    return firewall_probe.cgroup_gates(in_host(host))


def test_a_jail_outliving_one_of_its_units_drops_that_units_rules(host: SystemdHost) -> None:
    """One jail, members in two units: the stopped unit's member cgroups and gate go, the
    other unit's member stays jailed, and every commit succeeds meanwhile."""
    peer_a, peer_b = receiver(host, 7105), receiver(host, 7106)
    host.run("systemd-run", "--unit=njt-a", host.python, *sender(7105).split())
    host.run("systemd-run", "--unit=njt-b", host.python, *sender(7106).split())
    a, b = main_pid(host, "njt-a.service"), main_pid(host, "njt-b.service")
    assert host.netjail("block", str(a), "--jail", "two").returncode == 0
    out = host.netjail("block", str(b), "--jail", "two")
    assert out.returncode == 0, out.stderr
    assert not received_rises(peer_a) and not received_rises(peer_b)
    # one gate per unit, whatever the number of members in it
    assert [g[: g.index(".service/") + len(".service")] for g in gates(host)] == [
        "/system.slice/njt-a.service",
        "/system.slice/njt-b.service",
    ], gates(host)

    host.run("systemctl", "stop", "njt-a.service")  # its cgroup, the gate's path, is gone now
    notes = notes_once(host, lambda: len(gates(host)) == 1)
    assert "went with its unit" not in notes  # its members exited: nothing to re-place
    assert [g for g in gates(host) if "njt-a.service" in g] == [], notes
    assert not received_rises(peer_b), "the other unit's member was released"
    assert host.run("test", "-e", f"{CG}/system.slice/njt-a.service", check=False).returncode != 0


def test_reset_with_the_state_lost_leaves_every_unit_as_it_was(host: SystemdHost) -> None:
    peer = receiver(host, 7107)
    host.run("systemd-run", "--unit=njt-lost", host.python, *sender(7107).split())
    pid = main_pid(host, "njt-lost.service")
    unit_cg = host.cgroup_of(pid)
    out = host.netjail("block", str(pid))
    assert out.returncode == 0, out.stderr
    assert not received_rises(peer)
    host.sh("rm -rf /run/netjail")  # the state file, its lock and the watcher's pidfile

    out = host.netjail("reset")
    assert out.returncode == 0, out.stderr
    assert host.cgroup_of(pid) == unit_cg
    assert netjail_cgroups(host) == []
    assert received_rises(peer)


def test_a_units_process_in_a_threaded_subtree_is_refused_in_one_line(host: SystemdHost) -> None:
    """A process's own cgroup cannot enable controllers while it holds the process (EBUSY), so
    it can always take a child, except in a threaded subtree: once a payload made a threaded
    child, the unit's cgroup is "domain threaded" and every new child "domain invalid"
    (EOPNOTSUPP for a process). netjail refuses up front, before anything is made."""
    host.run("systemd-run", "--unit=njt-thr", "-p", "Delegate=yes", "/bin/sleep", "1000")
    pid = main_pid(host, "njt-thr.service")
    unit_cg = host.cgroup_of(pid)
    host.sh(f"mkdir {CG}{unit_cg}/t && echo threaded > {CG}{unit_cg}/t/cgroup.type")
    try:
        assert host.sh(f"cat {CG}{unit_cg}/cgroup.type").strip() == "domain threaded"
        out = host.netjail("block", str(pid))
        assert out.returncode == 4, (out.stdout, out.stderr)
        (line,) = out.stderr.splitlines()
        assert "belongs to njt-thr.service" in line and "is domain threaded" in line, line
        assert "IPAddressDeny=any" in line, line
        assert host.cgroup_of(pid) == unit_cg
        assert netjail_cgroups(host) == []
        assert json.loads(host.netjail("list", "--json").stdout) == []
    finally:
        host.sh(f"rmdir {CG}{unit_cg}/t", check=False)
