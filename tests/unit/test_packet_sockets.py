"""/proc/net/packet parsing (text captured here: tcpdump -i lo, and a cooked IPv4 socket on no
interface), its wording, and the holder scan for shared sockets on a real forked child (one of
the relatives it looks at)."""

from __future__ import annotations

import os
import socket

from netjail.backends.model import UnfilterableSocket
from netjail.backends.system import shared_sockets
from netjail.backends.system.packet_sockets import describe, parse_packet_table

CAPTURED = """\
sk               RefCnt Type Proto  Iface R Rmem   User   Inode
000000001cbe223b 3      3    0003   1     1 0      0      2632111
00000000bc412efa 3      2    0800   0     1 0      0      2632136
0000000000000000 3      3    0003   1     1 0      0      0
"""


def test_parse_packet_table_keys_by_inode_and_names_interfaces() -> None:
    got = parse_packet_table(CAPTURED, {1: "lo"})
    assert got == {
        2632111: UnfilterableSocket("packet", 2632111, "raw", 3, 1, "lo"),
        2632136: UnfilterableSocket("packet", 2632136, "dgram", 0x0800, 0, "any"),
    }
    assert parse_packet_table(CAPTURED)[2632111].interface == ""  # another namespace: unknown
    assert parse_packet_table(CAPTURED.splitlines()[0]) == {}
    assert parse_packet_table("header\ngarbage line\n1 2 x y z 1 0 0 9\n") == {}


def test_describe_says_what_the_socket_takes() -> None:
    got = parse_packet_table(CAPTURED, {1: "lo"})
    assert describe(got[2632111]) == "packet socket socket:[2632111] (raw, all protocols, on lo)"
    assert describe(got[2632136]) == "packet socket socket:[2632136] (dgram, ipv4, on every interface)"


def test_holders_finds_a_forked_child_sharing_a_socket_and_skips_the_rest() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine, socket.socket() as alone:
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(w)
            os.read(r, 1)  # holds `mine` (inherited) until the parent is done
            os._exit(0)
        try:
            inode, other = os.fstat(mine.fileno()).st_ino, os.fstat(alone.fileno()).st_ino
            family = shared_sockets.relatives([os.getpid()])
            assert child in family and os.getppid() in family
            found = shared_sockets.holders({inode}, family, skip={os.getpid()})
            assert [h[0] for h in found[inode]] == [child]
            assert shared_sockets.holders({other}, family, skip={os.getpid(), child}) == {}
        finally:
            os.close(w)
            os.waitpid(child, 0)
            os.close(r)


def test_result_lines_name_every_holder_and_fit_the_advice() -> None:
    from netjail.backends.jails.block_report import result_lines
    from netjail.backends.model import BlockResult, Member, SharedSocket, UnfilterableHeld

    workers = SharedSocket(
        7, "tcp LISTEN 0.0.0.0:80", (11,), (Member(10, 1, True, "srv"), Member(12, 1, True, "srv"))
    )
    activated = SharedSocket(8, "", (), (Member(1, 1, True, "systemd"),))
    held = UnfilterableHeld(11, "dhclient", (UnfilterableSocket("packet", 9, "dgram", 0x0800, 2, "eth0"),))
    r = BlockResult(
        "j", "cgroup", (Member(11, 1, True, "srv"),), 0, unfilterable=(held,), shared=(workers, activated)
    )
    packet, shared, systemd = result_lines(r)
    assert packet.startswith(
        "PID 11 (dhclient) keeps its packet socket socket:[9] (dgram, ipv4, on eth0) open"
    )
    assert "netjail run --seccomp" in packet
    assert shared.startswith(
        "socket:[7] (tcp LISTEN 0.0.0.0:80) of PID 11 is shared with PID 10 (srv), 12 (srv)"
    )
    assert shared.endswith("block --tree on their common parent to jail them all")
    assert systemd.startswith("socket:[8] held in the jail is shared with PID 1 (systemd)")
    assert "relaunch the service jailed" in systemd
