"""The inventory against the real kernel: real helper processes, real sockets, real /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends.model import Process, Snapshot
from netjail.backends.system import sockdiag
from netjail.backends.system.inventory import Inventory
from netjail.backends.system.procfs import parse_net_table, table_kind
from netjail.backends.system.socket_tables import TABLES, SocketTables

from tests.conftest import Host, Peer

CGROUP2 = Path("/sys/fs/cgroup/unified")
AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}

# A process whose sockets the test drives over stdin, one command per line:
#   udp            open a bound UDP socket         -> "fd port"
#   swap FD        close FD, open a new bound UDP socket in the same fd slot (fd count unchanged)
#   close FD       close FD
#   fork           fork a child that inherits every fd and sleeps -> "pid"
CONTROLLED = r"""
import os, socket, sys, time
socks = {}
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    socks[s.fileno()] = s
    return s
print("READY", flush=True)
for line in sys.stdin:
    cmd, *arg = line.split()
    if cmd == "udp":
        s = udp()
        print(s.fileno(), s.getsockname()[1], flush=True)
    elif cmd == "swap":
        socks.pop(int(arg[0])).close()
        s = udp()
        print(s.fileno(), s.getsockname()[1], flush=True)
    elif cmd == "close":
        socks.pop(int(arg[0])).close()
        print("ok", flush=True)
    elif cmd == "fork":
        pid = os.fork()
        if pid == 0:
            sys.stdin.close()
            time.sleep(3600)
            os._exit(0)
        print(pid, flush=True)
"""


class Controlled:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CONTROLLED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.readline() == "READY"
        self.children: list[int] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def send(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.readline()

    def udp(self, swap: int | None = None) -> tuple[int, int]:
        fd, port = self.send("udp" if swap is None else f"swap {swap}").split()
        return int(fd), int(port)

    def fork(self) -> int:
        pid = int(self.send("fork"))
        self.children.append(pid)
        return pid

    def stop(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def controlled() -> Iterator[Callable[[], Controlled]]:
    made: list[Controlled] = []

    def make() -> Controlled:
        c = Controlled()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def by_pid(snap: Snapshot, pid: int) -> Process:
    found = [p for p in snap.processes if p.pid == pid]
    assert len(found) == 1, f"pid {pid} appears {len(found)} times"
    return found[0]


def ports(p: Process) -> set[tuple[str, int, str]]:
    return {(s.proto, s.local_port, s.state) for s in p.sockets}


def test_identity_and_static_fields_of_a_helper(spawn_peer: Callable[..., Peer]) -> None:
    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    peer.wait_asleep()  # READY is printed before the sleep: under load it may still be runnable
    snap = Inventory().snapshot()
    p = by_pid(snap, peer.pid)
    assert p.ppid == os.getpid()
    assert p.user == "root" and p.uid == 0 and p.gid == 0
    assert p.cmdline[1].endswith("peers.py") and p.cmdline[2] == "udp-bind"
    assert p.exe == os.path.realpath(sys.executable)
    stat = Path(f"/proc/{peer.pid}/stat").read_text()
    assert p.start_time == int(stat[stat.rindex(")") + 2 :].split()[19])
    assert p.cgroup == Path(f"/proc/{peer.pid}/cgroup").read_text().split("0::", 1)[1].split("\n")[0]
    assert p.netns == snap.own_netns == os.stat("/proc/self/ns/net").st_ino
    assert p.state == "sleeping" and not p.kernel_thread and p.jail is None
    assert by_pid(snap, 2).kernel_thread  # kthreadd
    assert not snap.denied or all("fds" not in line for line in snap.denied)


def test_only_processes_with_inet_sockets_unless_all(spawn_peer: Callable[..., Peer]) -> None:
    sleeper = spawn_peer("sleep")
    holder = spawn_peer("udp-bind", "::1", 0)
    inv = Inventory()
    some = inv.snapshot(all_processes=False)
    pids = {p.pid for p in some.processes}
    assert holder.pid in pids and sleeper.pid not in pids
    assert all(p.sockets for p in some.processes)
    every = inv.snapshot(all_processes=True)
    assert {sleeper.pid, holder.pid, os.getpid(), 1} <= {p.pid for p in every.processes}
    assert ports(by_pid(every, holder.pid)) == {("udp", holder.info["lport"], "UNCONN")}


def test_incremental_refresh_picks_up_new_and_drops_closed_sockets(
    spawn_peer: Callable[..., Peer],
) -> None:
    inv = Inventory()
    server = spawn_peer("tcp-listen", "127.0.0.1", 0)
    lport = server.info["lport"]
    first = inv.snapshot(all_processes=False)
    assert ports(by_pid(first, server.pid)) == {("tcp", lport, "LISTEN")}

    client = spawn_peer("tcp-client", "127.0.0.1", lport)
    assert client.wait_for(lambda c: int(c.get("ok", 0)) > 0)  # type: ignore[call-overload]
    second = inv.snapshot(all_processes=False)
    accepted = {("tcp", lport, "ESTABLISHED"), ("tcp", lport, "LISTEN")}
    assert ports(by_pid(second, server.pid)) == accepted
    (csock,) = by_pid(second, client.pid).sockets
    assert (csock.local_port, csock.remote_port, csock.state) == (client.info["lport"], lport, "ESTABLISHED")

    client.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        third = inv.snapshot(all_processes=False)
        if ports(by_pid(third, server.pid)) == {("tcp", lport, "LISTEN")}:
            break
        time.sleep(0.05)
    assert ports(by_pid(third, server.pid)) == {("tcp", lport, "LISTEN")}
    assert client.pid not in {p.pid for p in third.processes}


def test_refresh_finds_a_new_socket_in_a_reused_fd_slot(controlled: Callable[[], Controlled]) -> None:
    """Close one socket and open another: the fd count does not move, the new inode must still
    be found and the closed one dropped."""
    c = controlled()
    inv = Inventory()
    fd, port = c.udp()
    assert ports(by_pid(inv.snapshot(False), c.pid)) == {("udp", port, "UNCONN")}
    fd2, port2 = c.udp(swap=fd)
    assert fd2 == fd and port2 != port
    assert ports(by_pid(inv.snapshot(False), c.pid)) == {("udp", port2, "UNCONN")}
    assert c.send(f"close {fd2}") == "ok"
    assert c.pid not in {p.pid for p in inv.snapshot(False).processes}


def test_a_socket_handed_to_a_child_moves_with_it(controlled: Callable[[], Controlled]) -> None:
    c = controlled()
    inv = Inventory()
    fd, port = c.udp()
    inv.snapshot(False)
    child = c.fork()
    snap = inv.snapshot(False)
    assert ports(by_pid(snap, c.pid)) == ports(by_pid(snap, child)) == {("udp", port, "UNCONN")}
    assert c.send(f"close {fd}") == "ok"
    snap = inv.snapshot(False)
    assert c.pid not in {p.pid for p in snap.processes}
    assert ports(by_pid(snap, child)) == {("udp", port, "UNCONN")}
    assert by_pid(snap, child).ppid == c.pid


def test_helper_in_another_netns_is_labelled_with_it(
    spawn_peer: Callable[..., Peer], make_host: Callable[[], Host]
) -> None:
    host = make_host()
    remote = spawn_peer("tcp-listen", host.addr4, 0, netns=host.netns)
    local = spawn_peer("udp-bind", "127.0.0.1", 0)
    snap = Inventory().snapshot(all_processes=False)
    theirs = os.stat(f"/run/netns/{host.netns}").st_ino
    assert theirs != snap.own_netns
    p = by_pid(snap, remote.pid)
    assert p.netns == theirs
    assert [(s.local_addr, s.local_port, s.state) for s in p.sockets] == [
        (host.addr4, remote.info["lport"], "LISTEN")
    ]
    assert by_pid(snap, local.pid).netns == snap.own_netns
    looked = Inventory().lookup(remote.pid)  # one process read fresh, through its namespace
    assert looked is not None and looked.netns == theirs and looked.sockets == p.sockets


def test_cgroup_is_reread_on_every_refresh(
    spawn_peer: Callable[..., Peer], uniq: Callable[[str], str]
) -> None:
    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    inv = Inventory()
    before = by_pid(inv.snapshot(False), peer.pid).cgroup
    group = CGROUP2 / uniq("njinv")
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(peer.pid))
        assert by_pid(inv.snapshot(False), peer.pid).cgroup == f"/{group.name}"
    finally:
        peer.kill()
        group.rmdir()
    assert before != f"/{group.name}"


def test_lookup_reads_one_process_fresh(spawn_peer: Callable[..., Peer]) -> None:
    inv = Inventory()
    peer = spawn_peer("tcp-listen", "::1", 0)
    p = inv.lookup(peer.pid)
    assert p is not None and p.pid == peer.pid and p.name.startswith("python")
    assert [(s.family, s.local_addr, s.local_port, s.state) for s in p.sockets] == [
        ("inet6", "::1", peer.info["lport"], "LISTEN")
    ]
    peer.kill()
    assert inv.lookup(peer.pid) is None
    assert inv.lookup(-1) is None and inv.lookup(0) is None


# Forks short-lived children holding a UDP and a listening TCP socket, 20 alive at a time, for
# as long as the flag file exists; then reaps every child and exits.
CHURN = r"""
import os, random, socket, sys, time
flag = sys.argv[1]
kids = set()
while os.path.exists(flag):
    pid = os.fork()
    if pid == 0:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        t.listen()
        time.sleep(random.random() * 0.3)  # a slow scan still sees some alive
        os._exit(0)
    kids.add(pid)
    while len(kids) > 20:
        kids.discard(os.wait()[0])
for _ in kids:
    os.wait()
"""


def test_processes_exiting_during_the_scan_do_not_break_it(
    spawn_peer: Callable[..., Peer], tmp_path: Path
) -> None:
    stable = spawn_peer("tcp-listen", "127.0.0.1", 0)
    flag = tmp_path / "churn"
    flag.touch()
    churn = subprocess.Popen([sys.executable, "-c", CHURN, str(flag)])
    warm = Inventory()
    seen_churn = snaps = 0
    deadline = time.monotonic() + 60  # a loaded machine is slow, never wrong
    try:
        while (snaps < 40 or not seen_churn) and time.monotonic() < deadline:
            for snap in (warm.snapshot(False), Inventory().snapshot(True)):
                snaps += 1
                assert ports(by_pid(snap, stable.pid)) == {("tcp", stable.info["lport"], "LISTEN")}
                seen_churn += sum(1 for p in snap.processes if p.ppid == churn.pid and p.sockets)
                assert len({p.pid for p in snap.processes}) == len(snap.processes)
        assert churn.poll() is None, "the churn stopped early: nothing exited under the scan"
    finally:
        flag.unlink()
        churn.wait(30)
    assert snaps >= 40 and seen_churn > 0, (snaps, seen_churn)
    final = warm.snapshot(True)
    assert not [p for p in final.processes if p.cmdline[-1:] == (str(flag),)]  # churn and kids gone
    assert ports(by_pid(final, stable.pid)) == {("tcp", stable.info["lport"], "LISTEN")}


def test_listed_pid_that_is_gone_and_a_zombie_are_handled(
    spawn_peer: Callable[..., Peer], tmp_path: Path
) -> None:
    """A /proc listing taken before a process exited: the pid directory is gone when read."""
    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "import socket; s = socket.socket(); s.listen()"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline, "the child never became a zombie"
        time.sleep(0.01)
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").symlink_to(f"/proc/{os.getpid()}")
    for pid in (zombie.pid, gone.pid, peer.pid, os.getpid()):
        (root / str(pid)).symlink_to(f"/proc/{pid}")
    try:
        snap = Inventory(root).snapshot(all_processes=True)
        assert gone.pid not in {p.pid for p in snap.processes}
        z = by_pid(snap, zombie.pid)
        assert z.state == "zombie" and z.sockets == () and z.netns is None
        assert ports(by_pid(snap, peer.pid)) == {("udp", peer.info["lport"], "UNCONN")}
        assert Inventory(root).lookup(gone.pid) is None
    finally:
        zombie.wait()


def test_netlink_dump_and_proc_tables_agree(spawn_peer: Callable[..., Peer]) -> None:
    """Our own namespace is read over sock_diag, others through /proc/<pid>/net: same answer."""
    server = spawn_peer("tcp-listen", "::", 0)  # dual-stack: v4 clients appear v4-mapped
    spawn_peer("tcp-client", "127.0.0.1", server.info["lport"])
    spawn_peer("tcp-client", "::1", server.info["lport"])
    spawn_peer("udp-send", "127.0.0.1", 9)
    spawn_peer("udp-bind", "::1", 0)
    via_proc = []
    for name in TABLES:
        text = Path(f"/proc/self/net/{name}").read_text()
        via_proc += parse_net_table(text, *table_kind(name), owned_only=True)
    dumped = sockdiag.dump(sockdiag.open_socket(), [(AF[table_kind(n)[0]], table_kind(n)[1]) for n in TABLES])
    assert len(via_proc) >= 7
    assert sorted(dumped, key=lambda s: s.inode) == sorted(via_proc, key=lambda s: s.inode)
    assert any(s.local_addr.startswith("::ffff:127.0.0.1") for s in dumped)


def test_another_namespace_reads_the_same_over_setns_and_proc(
    spawn_peer: Callable[..., Peer], make_host: Callable[[], Host]
) -> None:
    host = make_host()
    server = spawn_peer("tcp-listen", host.addr6, 0, netns=host.netns)
    spawn_peer("tcp-client", host.addr6, server.info["lport"], netns=host.netns)
    udp = spawn_peer("udp-bind", "0.0.0.0", 0, netns=host.netns)
    theirs = os.stat(f"/run/netns/{host.netns}").st_ino
    by_netns = {theirs: [udp.pid, server.pid]}
    tables = SocketTables()
    fast, fast_per_ns, _ = tables.refresh(by_netns)
    assert tables.enters_namespaces  # root: read over setns + sock_diag, not fallen back
    slow, slow_per_ns, _ = SocketTables(netlink=False).refresh(by_netns)
    assert fast == slow
    assert list(fast_per_ns) == list(slow_per_ns) == [theirs]
    states = sorted((s.proto, s.state) for s in slow.values())
    assert states == [("tcp", "ESTABLISHED"), ("tcp", "ESTABLISHED"), ("tcp", "LISTEN"), ("udp", "UNCONN")]
