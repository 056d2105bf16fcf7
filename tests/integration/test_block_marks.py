"""Sockets made before a block and used only after it: each gets the jail's socket mark.

A socket's cgroup is fixed when it is made (docs/kernel-facts.md #1), and sock_diag lists neither an
unbound TCP socket nor a raw/ICMP one, so no address rule can name them. Marked through
pidfd_getfd (docs/kernel-facts.md #9), every later packet of such a socket meets the jail's `-m mark` rule.
Attackers run as `nobody`; what arrives is counted at the receiver.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends.firewall.base import Match
from netjail.backends.jails import cgroups as jail_cgroups
from netjail.backends.system.cgroupfs import find_cgroup2

from tests import firewall_probe
from tests.conftest import Peer, python_for, setpriv_as
from tests.integration.test_block import CLI, settle_count

PROBE = Path(__file__).with_name("mark_probe.py")
N = 60
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def spawn_probe() -> Iterator[Callable[..., Peer]]:
    peers: list[Peer] = []

    def spawn(*args: object, cmd: list[str] | None = None) -> Peer:
        argv = cmd or [*python_for("nobody"), str(PROBE), *map(str, args)]
        proc = subprocess.Popen(
            [*setpriv_as("nobody"), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        peer = Peer(proc)
        threading.Thread(target=peer._read, daemon=True).start()
        peers.append(peer)
        if cmd is None:
            peer.wait_ready()
        return peer

    yield spawn
    for p in peers:
        p.kill()


class Connections:
    """A TCP listener on loopback counting the connections that delivered data."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            conn.settimeout(2)
            try:
                if conn.recv(100):
                    self.count += 1
            except OSError:
                pass
            conn.close()


def sock_mark(pid: int, fd: int, new: int | None = None) -> int:
    """The mark of another process's socket (pidfd_getfd, as root); set it first when `new`."""
    pidfd = os.pidfd_open(pid)
    try:
        dup = _libc.syscall(438, pidfd, fd, 0)
        assert dup >= 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=dup)
    try:
        if new is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, new)
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_MARK)
    finally:
        s.close()


def drops(jail: str) -> int:
    """IPv4 packets the jail dropped (its mark selector leads them to the jail's drop)."""
    return firewall_probe.dropped(jail, "inet")


def mark_selectors(jail: str) -> list[Match]:
    found = firewall_probe.rules(jail)
    assert found is not None, f"jail {jail} has no rules"
    return [m for m in found.out_selectors if m.mark is not None]


def block(cli: CLI, pid: int, name: str) -> subprocess.CompletedProcess[str]:
    out = cli("block", str(pid), "--jail", name)
    assert out.returncode == 0, out.stderr
    return out


def unblock(cli: CLI, pid: int) -> None:
    out = cli("unblock", str(pid))
    assert out.returncode == 0, out.stderr


def wait_round(peer: Peer, n: int) -> None:
    assert peer.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) >= n, 30), peer.lines[-3:]


def test_pool_of_unbound_tcp_sockets_is_cut_and_restored(cli: CLI, spawn_probe: Callable[..., Peer]) -> None:
    listener = Connections()
    member = spawn_probe("pool", N, "127.0.0.1", listener.port)
    block(cli, member.pid, "pool")
    member.proc.send_signal(10)  # SIGUSR1: connect + send + close through N pre-made sockets
    wait_round(member, N)
    time.sleep(0.5)
    assert listener.count == 0, f"{listener.count} of {N} connections got through the block"
    assert drops("pool") >= N, "the jail's DROP rule must count every SYN it dropped"
    fds = member.info["fds"]
    assert isinstance(fds, list)
    unblock(cli, member.pid)
    assert all(sock_mark(member.pid, fd) == 0 for fd in fds[N:]), "original mark 0 not restored"
    member.proc.send_signal(10)
    wait_round(member, 2 * N)
    deadline = time.monotonic() + 3
    while listener.count < N and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listener.count == N, f"after unblock only {listener.count} of {N} connections"


def test_sockets_in_a_threads_own_fd_table_are_cut(cli: CLI, spawn_probe: Callable[..., Peer]) -> None:
    """Attack: a thread that unshared its fd table holds pre-made sockets /proc/PID/fd does not
    list (10 of 10 connections got through before fd_tables)."""
    listener = Connections()
    member = spawn_probe("threadpool", 10, "127.0.0.1", listener.port)
    block(cli, member.pid, "thr")
    member.proc.send_signal(10)
    wait_round(member, 10)
    time.sleep(0.5)
    assert listener.count == 0, f"{listener.count} of 10 connections got through the block"


def test_tree_catches_children_forked_during_the_block(cli: CLI, spawn_probe: Callable[..., Peer]) -> None:
    """Attack: a parent forking every 2 ms; children born between the descendant list and the
    move stayed outside the jail for good (28 escaped one block before the re-listing)."""
    listener = Connections()
    parent = spawn_probe("forkstorm", "127.0.0.1", listener.port, 4)
    time.sleep(0.5)
    out = cli("block", str(parent.pid), "--tree", "--jail", "storm")
    assert out.returncode == 0, out.stderr
    time.sleep(4.5)  # the storm is over and every child made its check
    assert listener.count == 0, f"{listener.count} children forked during the block stayed outside"


def test_a_member_holding_an_io_uring_is_named(cli: CLI, spawn_probe: Callable[..., Peer]) -> None:
    """io_uring fixed files are in no fd table: block cannot cut them, and says so."""
    member = spawn_probe("iouring")
    assert member.info["ring"] >= 0, "io_uring_setup failed on this kernel"
    out = block(cli, member.pid, "uring")
    assert f"PID {member.pid} holds an io_uring instance" in out.stderr, out.stderr


def test_connected_udp_socket_cannot_sendto_another_port(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer]
) -> None:
    decoy = spawn_peer("udp-recv", "127.0.0.1", 0)
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("sendto", "127.0.0.1", decoy.info["lport"], recv.info["lport"])
    block(cli, member.pid, "sendto")
    member.proc.send_signal(10)
    assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) >= 20, 10)
    assert settle_count(recv, "received") == 0


def test_bound_udp_socket_cannot_pick_another_source(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer]
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("pktinfo", "127.0.0.1", recv.info["lport"], "127.0.0.2")
    block(cli, member.pid, "pktinfo")
    member.proc.send_signal(10)
    assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) >= 20, 10)
    assert settle_count(recv, "received") == 0


def _replies(peer: Peer) -> int:
    return sum("bytes from" in line for line in list(peer.lines))


def _rising(peer: Peer, seconds: float) -> int:
    before = _replies(peer)
    time.sleep(seconds)
    return _replies(peer) - before


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_running_ping_stops_and_resumes(cli: CLI, spawn_probe: Callable[..., Peer], host: str) -> None:
    ping = spawn_probe(cmd=["ping", "-n", "-i", "0.2", host])
    deadline = time.monotonic() + 5
    while _replies(ping) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _replies(ping) >= 3, ping.lines[-3:]
    block(cli, ping.proc.pid, "ping")
    time.sleep(0.5)  # a reply already on its way
    assert _rising(ping, 2.0) == 0, "ping still gets replies while blocked"
    unblock(cli, ping.proc.pid)
    assert _rising(ping, 2.0) >= 5, "ping did not resume after unblock"


def _jail_mark(jail: str) -> int:
    mark = mark_selectors(jail)[0].mark
    assert mark is not None
    return mark


def test_foreign_mark_is_refused_without_force(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer]
) -> None:
    """A socket another program marked (policy routing, a VPN rely on it): block names it and
    stops with nothing applied (it used to jail the process and leave that socket alone)."""
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("sendto", "127.0.0.1", recv.info["lport"], recv.info["lport"])
    fd = int(member.info["fd"])  # type: ignore[call-overload]
    assert sock_mark(member.pid, fd, new=0x1) == 0x1
    cgroup = Path(f"/proc/{member.pid}/cgroup").read_text()
    inode = os.stat(f"/proc/{member.pid}/fd/{fd}").st_ino
    out = cli("block", str(member.pid), "--jail", "foreign")
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"netjail: PID {member.pid} socket:[{inode}] (udp 127.0.0.1:{member.info['lport']} -> "
        f"127.0.0.1:{recv.info['lport']}) carries mark 0x1, outside netjail's range 0xff000000: "
        "not blocked, another program's routing or VPN may rely on it "
        "(netjail block --force re-marks it until unblock)\n"
    )
    # nothing half-applied: no rules, no cgroup move, no jail, its mark untouched, traffic flows
    assert not firewall_probe.has_rules("foreign") and firewall_probe.netjail_left() == []
    assert Path(f"/proc/{member.pid}/cgroup").read_text() == cgroup
    mount = find_cgroup2()
    assert mount is not None and "foreign" not in jail_cgroups.existing(Path(mount.path))
    listed = cli("list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout
    assert sock_mark(member.pid, fd) == 0x1
    member.proc.send_signal(10)
    assert recv.wait_for(lambda c: int(c.get("received", 0)) >= 5, 10), "it must not be cut off"


@pytest.mark.parametrize("original", [0x1, 0x01000001])  # the second has bits inside the range too
def test_foreign_mark_is_re_marked_with_force_and_restored(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer], original: int
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("sendto", "127.0.0.1", recv.info["lport"], recv.info["lport"])
    fd = int(member.info["fd"])  # type: ignore[call-overload]
    assert sock_mark(member.pid, fd, new=original) == original
    out = cli("block", str(member.pid), "--jail", "forced", "--force")
    assert out.returncode == 0, out.stderr
    assert f"carried mark {original:#x} (another program's): re-marked (--force)" in out.stderr
    assert sock_mark(member.pid, fd) == _jail_mark("forced")
    member.proc.send_signal(10)
    assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) >= 20, 10)
    assert settle_count(recv, "received") == 0
    unblock(cli, member.pid)
    assert sock_mark(member.pid, fd) == original, "its own whole mark must be back after unblock"


FD_PASS = Path(__file__).with_name("fd_pass_probe.py")


@pytest.mark.parametrize("forced", [False, True])
def test_watcher_re_marks_a_later_foreign_mark_only_in_a_forced_jail(
    cli: CLI, spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer], forced: bool
) -> None:
    """The watcher cannot refuse: a socket with another program's mark handed to a member
    later is left alone (and named in watcher.log), unless the jail was made with --force."""
    rendezvous = tempfile.mkdtemp(prefix="netjail-marks-")
    try:
        Path(rendezvous).chmod(0o777)
        path = f"{rendezvous}/s"
        recv = spawn_peer("udp-recv", "127.0.0.1", 0)
        member = spawn_probe(cmd=[*python_for("nobody"), str(FD_PASS), "take", path])
        member.wait_ready()
        flags = ["--force"] if forced else []
        out = cli("block", str(member.pid), "--jail", "later", *flags, env={"NETJAIL_WATCH_INTERVAL": "1"})
        assert out.returncode == 0, out.stderr
        giver = spawn_probe(
            cmd=[
                *python_for("nobody"),
                str(FD_PASS),
                "give",
                path,
                "udp",
                "127.0.0.1",
                str(recv.info["lport"]),
            ]
        )
        giver.wait_ready()
        assert sock_mark(giver.pid, int(giver.info["fd"]), new=0x1) == 0x1  # type: ignore[call-overload]
        member.proc.send_signal(10)  # fetch it and send through it
        placeholder = int(member.info["placeholder"])  # type: ignore[call-overload]
        assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) > 0, 5)
        time.sleep(2.5)  # two watcher periods
        expected = _jail_mark("later") if forced else 0x1
        assert sock_mark(member.pid, placeholder) == expected
        log_file = Path(os.environ["NETJAIL_STATE_DIR"]) / "watcher.log"
        log = log_file.read_text() if log_file.exists() else ""  # written only with something to say
        assert ("already carries mark 0x1" in log) is not forced, log
        frozen = settle_count(recv, "received")
        time.sleep(1.0)
        assert recv.value("received") == frozen, "cut either way (forced: the mark; else its 5-tuple)"
        unblock(cli, member.pid)
        assert sock_mark(member.pid, placeholder) == 0x1
    finally:
        shutil.rmtree(rendezvous)


def test_one_mark_rule_per_jail_and_family(cli: CLI, spawn_probe: Callable[..., Peer]) -> None:
    listener = Connections()
    member = spawn_probe("pool", 5, "127.0.0.1", listener.port)
    block(cli, member.pid, "onerule")
    marks = mark_selectors("onerule")
    # IPv4 and IPv6, whatever the number of sockets
    assert sorted(m.family for m in marks) == ["inet", "inet6"], firewall_probe.rules("onerule")
    assert len({m.mark for m in marks}) == 1
    mark = marks[0].mark
    fds = member.info["fds"]
    assert isinstance(fds, list)
    assert {sock_mark(member.pid, fd) for fd in fds} == {mark}


def test_bad_mark_mask_is_refused_before_anything_is_applied(
    cli: CLI, spawn_probe: Callable[..., Peer]
) -> None:
    listener = Connections()
    member = spawn_probe("pool", 1, "127.0.0.1", listener.port)
    out = cli("block", str(member.pid), "--jail", "badmask", env={"NETJAIL_MARK_MASK": "0x101"})
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "NETJAIL_MARK_MASK" in out.stderr, out.stderr
    assert not firewall_probe.has_rules("badmask") and firewall_probe.netjail_left() == []


# The CLI under a seccomp filter answering pidfd_getfd with ENOSYS, as a kernel < 5.6 does; the
# watcher it starts inherits the filter.
NO_PIDFD_GETFD = """
import errno, os, sys
import pyseccomp as sc
f = sc.SyscallFilter(sc.ALLOW)
f.add_rule(sc.ERRNO(errno.ENOSYS), "pidfd_getfd")
f.load()
os.execv(sys.executable, [sys.executable, "-m", "netjail.app.cli", *sys.argv[1:]])
"""


def test_without_pidfd_getfd_block_falls_back_to_sets(
    spawn_peer: Callable[..., Peer], spawn_probe: Callable[..., Peer]
) -> None:
    """Block says so once and matches the socket through the jail's ipsets, which still hold a
    connected UDP socket's sendto() to another port (its local port, not its peer, is in the
    "send" set). Rule counts and every other kind of socket: test_block_sets.py."""
    decoy = spawn_peer("udp-recv", "127.0.0.1", 0)
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    member = spawn_probe("sendto", "127.0.0.1", decoy.info["lport"], recv.info["lport"])
    cmd = [*python_for(None), "-c", NO_PIDFD_GETFD, "block", str(member.pid), "--jail", "nogetfd"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("cannot mark the sockets") == 1, out.stderr
    assert "Function not implemented" in out.stderr, out.stderr
    assert "fallback in use" in out.stderr, out.stderr
    found = firewall_probe.rules("nogetfd")
    send_set = Match("inet", match_set="nj4-nogetfd-s", set_flags="src,src")
    assert found is not None and send_set in found.out_selectors, found
    fd = int(member.info["fd"])  # type: ignore[call-overload]
    assert sock_mark(member.pid, fd) == 0
    member.proc.send_signal(10)
    assert member.wait_for(lambda c: int(c.get("sent", 0)) + int(c.get("errors", 0)) >= 20, 10)
    assert settle_count(recv, "received") == 0


def test_doctor_does_not_count_netjails_own_marks(cli: CLI, spawn_probe: Callable[..., Peer]) -> None:
    """A jail's mark rules and the sockets it marked are netjail's: doctor's marks check stays ok."""
    listener = Connections()
    member = spawn_probe("pool", 3, "127.0.0.1", listener.port)
    block(cli, member.pid, "own")
    fds = member.info["fds"]
    assert isinstance(fds, list) and sock_mark(member.pid, fds[0]) == _jail_mark("own")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # listed by sock_diag, unlike the pool's
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, _jail_mark("own"))
        out = cli("doctor", "--json")
    marks = next(c for c in json.loads(out.stdout) if c["name"] == "marks")
    assert (marks["status"], marks["marks"]) == ("ok", []), marks


def _inet_fds(pid: int) -> list[int]:
    fds = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:["):
                fds.append(int(name))
    return fds


def test_release_takes_the_mark_off_sockets_made_since_the_last_pass(
    spawn_peer: Callable[..., Peer], state_dir: Path
) -> None:
    """A listener made in the jail gets the jail's mark at creation (sock_create_mark) and a
    connection it accepts inherits it; neither is in the state until a watcher pass records
    it. Released before any pass, both must carry mark 0 again: a socket left with netjail's
    mark would be caught by the next jail given the same value."""
    from netjail.backends.engine import Engine
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import BlockRequest

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    peer = spawn_peer("listen-on-signal", "127.0.0.1", port)
    engine = Engine(state_dir, spawn_watcher=False)
    engine.block(BlockRequest(peer.pid, jail="fresh", allow_loopback=True))  # to accept one
    peer.proc.send_signal(10)  # SIGUSR1: listen now, inside the jail
    assert peer.wait_for(lambda _: "lport" in peer.info, 5)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        mark = engine.store.load().jails["fresh"].mark
        deadline = time.monotonic() + 5
        while len([fd for fd in _inet_fds(peer.pid) if sock_mark(peer.pid, fd) == mark]) < 2:
            assert time.monotonic() < deadline, "the listener and its accepted socket never got the mark"
            time.sleep(0.05)
        reg = engine.store.load()
        jail = reg.jails["fresh"]
        assert not jail.marks, "recorded already: the test needs them unrecorded"
        mount = find_cgroup2()
        assert mount is not None
        Reconciler(Path(mount.path), engine.firewall, engine.inventory).release(
            reg, jail, list(jail.members), remove_jail=True
        )
        engine.store.save(reg)
        left = {fd: sock_mark(peer.pid, fd) for fd in _inet_fds(peer.pid)}
        assert left and all(m == 0 for m in left.values()), f"marks left after release: {left}"
    finally:
        client.close()
