"""A jailed program keeping a socket made before the block in flight (attack review).

  in-flight HOST PORT   a UDP socket connected to HOST:PORT is made at start, then kept in a
                        unix socketpair's queue (SCM_RIGHTS to itself): it is in the process's
                        fd table only for the microseconds of each send, taken out of the queue
                        just before and put back just after.

Prints `READY {json}` once set up and `COUNT {json}` lines (sent, errors) like tests/peers.py.
"""

from __future__ import annotations

import array
import json
import os
import socket
import sys
import time


def in_flight(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    inet = socket.socket(family, socket.SOCK_DGRAM)
    inet.connect((host, port))
    put, take = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    def stash(fd: int) -> None:
        put.sendmsg([b"s"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        os.close(fd)

    stash(inet.detach())
    print("READY " + json.dumps({"pid": os.getpid(), "lport": 0}), flush=True)
    sent = errors = 0
    size = socket.CMSG_SPACE(array.array("i").itemsize)
    while True:
        _, anc, _, _ = take.recvmsg(1, size)
        fd = array.array("i", anc[0][2][:4])[0]
        try:
            os.write(fd, b"y" * 32)
            sent += 1
        except OSError:
            errors += 1
        stash(fd)
        print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    in_flight(sys.argv[2], int(sys.argv[3]))
