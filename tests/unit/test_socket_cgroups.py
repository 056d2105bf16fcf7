"""The cgroup a socket was created in, as sock_diag reports it (backends/system/sockdiag.py,
backends/jails/socket_cgroups.py): parsed from built records and read from this kernel."""

from __future__ import annotations

import os
import socket
import struct

from netjail.backends.jails.socket_cgroups import SocketCgroups, held_inodes
from netjail.backends.model import Socket
from netjail.backends.system import sockdiag
from netjail.backends.system.cgroupfs import find_cgroup2, read_cgroup


def record(inode: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = bytes(68) + struct.pack("=I", inode)
    for kind, value in attrs:
        raw = struct.pack("=HH", 4 + len(value), kind) + value
        body += raw + bytes(-len(raw) % 4)
    return struct.pack("=IHHII", 16 + len(body), sockdiag.SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


DONE = struct.pack("=IHHII", 20, sockdiag.NLMSG_DONE, 2, 1, 0) + bytes(4)


def test_cgroup_id_attribute_after_others_is_found() -> None:
    data = record(7, [(8, b"\0"), (15, bytes(4)), (21, struct.pack("=Q", 4242))]) + DONE
    out: dict[int, int] = {}
    assert sockdiag.parse_cgroup_ids(data, out)
    assert out == {7: 4242}


def test_a_record_without_the_attribute_stays_unknown() -> None:
    out: dict[int, int] = {}
    assert not sockdiag.parse_cgroup_ids(record(9, [(8, b"\0")]) + record(10, []), out)
    assert out == {}


def test_an_inode_above_2_31_is_unsigned() -> None:
    out: dict[int, int] = {}
    sockdiag.parse_cgroup_ids(record(0xFFFFFFF0, [(21, struct.pack("=Q", 1))]), out)
    assert out == {0xFFFFFFF0: 1}


def test_this_kernel_reports_the_creating_cgroup_as_its_directory_inode() -> None:
    mount = find_cgroup2()
    assert mount is not None
    mine = os.stat(mount.dir_of(read_cgroup())).st_ino
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.connect(("127.0.0.1", 9))
        inode = os.fstat(s.fileno()).st_ino
        assert inode in (held_inodes(os.getpid()) or [])
        sock = Socket("inet", "udp", "127.0.0.1", s.getsockname()[1], "127.0.0.1", 9, "ESTABLISHED", inode)
        cache = SocketCgroups()
        assert cache.ids([sock]) == {sock: mine}
        assert cache.unseen([sock], {mine}) == set()
        assert cache.unseen([sock], {mine + 1}) == {inode}
        assert cache.dumps == 1  # remembered: asked once
        cache.retain(())
        cache.ids([sock])
        assert cache.dumps == 2


def test_without_the_kernels_answer_every_held_socket_is_unseen() -> None:
    sock = Socket("inet", "tcp", "127.0.0.1", 40000, "127.0.0.1", 80, "ESTABLISHED", 12345)
    cache = SocketCgroups()
    cache.available = False  # what a refused dump or a kernel before 5.7 leaves
    assert cache.unseen([sock], {1, 2, 3}) == {12345}
    assert cache.dumps == 0
