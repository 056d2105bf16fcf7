"""What `block` cannot do cleanly, said in its result: a real tcpdump's AF_PACKET socket stays
open (netfilter never sees it: the capture keeps growing after the block), and a pre-fork
server's listener is one socket shared by the master and every worker, so blocking one worker
cuts it for all of them (--tree on the master jails them all, and says nothing).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Peer

Cli = Callable[..., subprocess.CompletedProcess[str]]
PCAP_HEADER = 24
RECORD = struct.Struct("=IIII")  # ts_sec, ts_usec, incl_len, orig_len


def captured(path: Path) -> int:
    """Packets in a pcap file written with -U (flushed per packet)."""
    data = path.read_bytes()
    n, at = 0, PCAP_HEADER
    while at + RECORD.size <= len(data):
        at += RECORD.size + RECORD.unpack_from(data, at)[2]
        n += 1
    return n


def packet_inodes() -> set[int]:
    lines = Path("/proc/net/packet").read_text().splitlines()[1:]
    return {int(line.split()[8]) for line in lines if line.split()}


def socket_inodes_of(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def wait_for(pred: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def tcpdump(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, int]]:
    """A real `tcpdump -i lo` writing UDP to one port into a pcap: (process, its packet socket
    inode, the pcap, the port)."""
    port = 40000 + os.getpid() % 20000
    pcap = tmp_path / "lo.pcap"
    argv = ["tcpdump", "-i", "lo", "-n", "-U", "-Z", "root", "-w", str(pcap), "udp", "port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: socket_inodes_of(proc.pid) & packet_inodes() and pcap.exists(), "tcpdump's socket")
        (inode,) = socket_inodes_of(proc.pid) & packet_inodes()
        yield proc, inode, pcap, port
    finally:
        proc.kill()
        proc.wait(5)


def send_udp(port: int, n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(b"x" * 32, ("127.0.0.1", port))


def block_json(cli: Cli, *args: str) -> dict[str, Any]:
    out = cli("block", "--json", *args)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_blocked_tcpdump_is_named_as_keeping_its_packet_socket(
    cli: Cli, tcpdump: tuple[subprocess.Popen[bytes], int, Path, int]
) -> None:
    proc, inode, pcap, port = tcpdump
    send_udp(port, 5)
    wait_for(lambda: captured(pcap) >= 5, "tcpdump capturing before the block")

    result = block_json(cli, str(proc.pid))
    jail = result["jail"]
    assert [m["pid"] for m in result["members"]] == [proc.pid]
    (held,) = result["unfilterable"]
    assert held["pid"] == proc.pid and held["name"] == "tcpdump"
    assert held["sockets"] == [
        {"kind": "packet", "inode": inode, "type": "raw", "protocol": 3, "ifindex": 1, "interface": "lo"}
    ]
    assert result["shared"] == []
    assert f"/{jail}/" in Path(f"/proc/{proc.pid}/cgroup").read_text()  # jailed all the same

    # what the warning says is true: the packet socket still sees traffic after the block
    before = captured(pcap)
    send_udp(port, 10)
    wait_for(lambda: captured(pcap) >= before + 10, "tcpdump capturing after the block")

    out = cli("ps", "--json", "--pid", str(proc.pid))
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["jail"] == jail
    assert [s["inode"] for s in entry["unfilterable"]] == [inode]
    table = cli("ps", "--pid", str(proc.pid))
    row = next(line for line in table.stdout.splitlines() if line.split()[0] == str(proc.pid))
    assert row.split()[3] == "0!", table.stdout
    assert "AF_PACKET" in table.stdout and "--seccomp" in table.stdout

    assert cli("unblock", str(proc.pid)).returncode == 0
    out = cli("block", str(proc.pid))
    assert out.returncode == 0, out.stderr
    warning = next(line for line in out.stdout.splitlines() if line.startswith("warning:"))
    assert f"PID {proc.pid} (tcpdump)" in warning and f"socket:[{inode}]" in warning
    assert "AF_PACKET" in warning and "on lo" in warning and "netjail run --seccomp" in warning


def test_ps_lists_a_packet_socket_holder_without_inet_sockets(
    cli: Cli, tcpdump: tuple[subprocess.Popen[bytes], int, Path, int]
) -> None:
    proc, inode, _, _ = tcpdump
    out = cli("ps", "--json")  # no --all: holding a packet socket is being on the network
    assert out.returncode == 0, out.stderr
    (entry,) = [p for p in json.loads(out.stdout) if p["pid"] == proc.pid]
    assert entry["sockets"] == [] and [s["inode"] for s in entry["unfilterable"]] == [inode]


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.5) as c:
            c.sendall(b"ping")
            return c.recv(4) == b"ping"
    except OSError:
        return False


def test_blocking_one_prefork_worker_names_the_master_and_the_other_workers(
    cli: Cli, spawn_peer: Callable[..., Peer]
) -> None:
    server = spawn_peer("tcp-prefork", "127.0.0.1", 0)
    workers: list[int] = server.info["workers"]  # type: ignore[assignment]
    inode, port = int(server.info["inode"]), int(server.info["lport"])  # type: ignore[call-overload]
    assert connects(port)

    result = block_json(cli, str(workers[0]))
    (shared,) = result["shared"]
    assert shared["inode"] == inode
    assert shared["description"] == f"tcp LISTEN 127.0.0.1:{port}"
    assert shared["members"] == [workers[0]]
    assert {m["pid"] for m in shared["others"]} == {server.pid, *workers[1:]}
    # what the note says is true: one socket, cut for the workers outside the jail too
    assert not connects(port)

    assert cli("unblock", str(workers[0])).returncode == 0
    assert connects(port)
    out = cli("block", str(workers[1]))
    assert out.returncode == 0, out.stderr
    (warning,) = [line for line in out.stdout.splitlines() if line.startswith("warning:")]
    assert f"socket:[{inode}] (tcp LISTEN 127.0.0.1:{port}) of PID {workers[1]} is shared with" in warning
    for pid in (server.pid, workers[0], workers[2]):
        assert f"{pid} (" in warning
    assert "--tree" in warning


def test_tree_on_the_prefork_master_jails_every_holder_without_a_note(
    cli: Cli, spawn_peer: Callable[..., Peer]
) -> None:
    server = spawn_peer("tcp-prefork", "127.0.0.1", 0)
    workers: list[int] = server.info["workers"]  # type: ignore[assignment]
    port = int(server.info["lport"])  # type: ignore[call-overload]

    result = block_json(cli, "--tree", str(server.pid))
    assert {m["pid"] for m in result["members"]} == {server.pid, *workers}
    assert result["shared"] == [] and result["unfilterable"] == []
    assert not connects(port)

    assert cli("unblock", str(server.pid)).returncode == 0
    out = cli("block", "--tree", str(server.pid))
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stdout and "shared" not in out.stdout + out.stderr
