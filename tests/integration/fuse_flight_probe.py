"""A jailed program that parks a file of its own FUSE mount in a unix queue (attack review).

  serve CMD...            (root) mounts a FUSE file system whose daemon (a thread here) never
                          answers FLUSH and runs CMD with a unix socketpair, a file on the mount
                          queued in the socketpair on fds 3 and 4 (SCM_RIGHTS): whoever
                          receives that fd and closes it waits for the FLUSH answer, for ever
  fuse-flight HOST PORT   (the user, fds 3 and 4 open: lower than its own, peeked first) keeps a
                          UDP socket to HOST:PORT in flight as in_flight_probe.py does

Prints `READY {json}` once set up and `COUNT {json}` lines (sent, errors) like tests/peers.py.
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from in_flight_probe import in_flight  # type: ignore[import-not-found]

_IN = struct.Struct("<IIQQIIIHH")  # fuse_in_header
_OUT = struct.Struct("<IiQ")  # fuse_out_header
_ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # fuse_attr
_INIT, _LOOKUP, _GETATTR, _OPEN, _FLUSH = 26, 1, 3, 14, 25


def _attr(ino: int, mode: int) -> bytes:
    uid, gid = os.getuid(), os.getgid()
    return _ATTR.pack(ino, 0, 0, 0, 0, 0, 0, 0, 0, mode, 1, uid, gid, 0, 4096, 0)


def _serve(dev: int) -> None:
    while True:
        try:
            req = os.read(dev, 1 << 20 | 4096)
        except OSError:
            return
        _, opcode, unique, node, _, _, pid, *_ = _IN.unpack_from(req)
        if opcode == _INIT:
            body = struct.pack("<IIIIHHIIHHII", 7, 31, 0, 0, 16, 12, 65536, 1, 1, 0, 0, 0) + bytes(24)
        elif opcode == _LOOKUP:
            body = struct.pack("<QQQQII", 2, 0, 3600, 0, 0, 0) + _attr(2, 0o100644)
        elif opcode == _GETATTR:
            body = struct.pack("<QII", 0, 0, 0) + _attr(node, 0o40755 if node == 1 else 0o100644)
        elif opcode == _OPEN:
            body = struct.pack("<QIi", 1, 0, 0)
        elif opcode == _FLUSH and pid != os.getpid():
            continue  # never answered: the closer waits (our own, at exit, is)
        elif opcode == _FLUSH:
            body = b""
        else:
            os.write(dev, _OUT.pack(_OUT.size, -38, unique))  # ENOSYS
            continue
        os.write(dev, _OUT.pack(_OUT.size + len(body), 0, unique) + body)


def serve_and_start(child: list[str]) -> None:
    """As root, in a mount namespace of its own (the test's machine keeps /dev/fuse root's: on
    most distributions it is 0666 and fusermount is setuid, and a user mounts the same way):
    mount, serve, open a file on the mount and run `child` with it as fd 3."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare")
    if libc.mount(b"none", b"/", None, 0x40000 | 0x4000, None) != 0:  # MS_PRIVATE | MS_REC
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    where = tempfile.mkdtemp()
    dev = fcntl.fcntl(os.open("/dev/fuse", os.O_RDWR), fcntl.F_DUPFD_CLOEXEC, 100)  # above 3 and 4
    opts = f"fd={dev},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"netjail-attack", where.encode(), b"fuse", 0, opts) != 0:
        raise OSError(ctypes.get_errno(), "mount fuse")
    threading.Thread(target=_serve, args=(dev,), daemon=True).start()
    poison = os.open(os.path.join(where, "f"), os.O_RDONLY)
    put, take = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    put.sendmsg([b"p"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [poison]))])
    os.dup2(put.fileno(), 3)
    os.dup2(take.fileno(), 4)
    # poison stays open here: closed at exit, its FLUSH comes from this pid and is answered
    subprocess.Popen(child, pass_fds=(3, 4)).wait()


if __name__ == "__main__":
    if sys.argv[1] == "serve":  # serve CHILD...: as root
        serve_and_start(sys.argv[2:])
    else:  # fuse-flight HOST PORT: as the user, fd 3 open
        in_flight(sys.argv[2], int(sys.argv[3]))
