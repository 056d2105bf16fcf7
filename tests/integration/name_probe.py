"""A process that calls itself NAME (comm, via prctl), for jail names derived from it.

  parent NAME          on SIGUSR1 forks a child that sleeps (born wherever the parent is then),
                       on SIGUSR2 exits (the child stays)
  udp NAME HOST PORT   sends a datagram to HOST:PORT every 20 ms from a connected UDP socket
  shared NAME HOST PORT  the same socket, made and held by this process, sent through by a
                       child it forks (READY names the child: `child`)
  unshared NAME HOST PORT  a UDP socket made here, then a child that moves to a network
                       namespace of its own (user namespace too: no privilege needed) and
                       sends to HOST:PORT through it every 20 ms (READY names the child)
  pass-inside NAME HOST PORT  on SIGUSR1, a UDP socket connected to HOST:PORT, handed to a
                       child forked at start (a unix socketpair) and kept; the child sends
                       through it every 20 ms (READY names the child)
  backlog NAME         a TCP listener on 127.0.0.1 (READY: `lport`) that accepts nothing until
                       SIGUSR1, then accepts every connection queued and sends b"hello" on each

Prints `READY {json}` once set up and `COUNT {json}` lines (sent, errors) like tests/peers.py.
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import signal
import socket
import sys
import time

_PR_SET_NAME = 15
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def named(name: str) -> None:
    ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode(), 0, 0, 0)


def parent(name: str) -> None:
    named(name)

    def fork(*_: object) -> None:
        if os.fork() == 0:
            os.setsid()  # the parent's PID, its session's id, is then free once it exits
            while True:
                time.sleep(3600)

    signal.signal(signal.SIGUSR1, fork)
    signal.signal(signal.SIGUSR2, lambda *_: os._exit(0))
    print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
    while True:
        time.sleep(3600)


def udp(name: str, host: str, port: int, shared: bool = False) -> None:
    named(name)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    if shared:
        wait, go = os.pipe()
        child = os.fork()
        if child:
            print("READY " + json.dumps({"pid": os.getpid(), "child": child}), flush=True)
            os.write(go, b"x")  # the child writes its first line after READY, never into it
            while True:
                time.sleep(3600)
        os.read(wait, 1)
    else:
        print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
    sent = errors = 0
    while True:
        try:
            sock.send(b"z" * 16)
            sent += 1
        except OSError:
            errors += 1
        print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)
        time.sleep(0.02)


def unshared(name: str, host: str, port: int) -> None:
    named(name)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    wait, go = os.pipe()
    printed, say = os.pipe()
    child = os.fork()
    if child:
        sock.close()  # the child's alone: no member of a block holds it
        os.read(wait, 1)  # unshared by then
        print("READY " + json.dumps({"pid": os.getpid(), "child": child}), flush=True)
        os.write(say, b"x")  # its lines come after READY, never into it
        while True:
            time.sleep(3600)
    if ctypes.CDLL(None, use_errno=True).unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    os.write(go, b"x")
    os.read(printed, 1)
    sent = errors = 0
    while True:
        try:
            sock.sendto(b"u" * 16, (host, port))
            sent += 1
        except OSError:
            errors += 1
        print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)
        time.sleep(0.02)


def pass_inside(name: str, host: str, port: int) -> None:
    named(name)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    child = os.fork()
    if child == 0:
        size = socket.CMSG_SPACE(4)
        _, anc, _, _ = theirs.recvmsg(1, size)
        sock = socket.socket(fileno=array.array("i", anc[0][2][:4])[0])
        sent = errors = 0
        while True:
            try:
                sock.send(b"p" * 16)
                sent += 1
            except OSError:
                errors += 1
            print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)
            time.sleep(0.02)
    held: list[socket.socket] = []

    def give(*_: object) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, port))
        held.append(sock)  # this process keeps its copy
        mine.sendmsg([b"s"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))])

    signal.signal(signal.SIGUSR1, give)
    print("READY " + json.dumps({"pid": os.getpid(), "child": child}), flush=True)
    while True:
        time.sleep(3600)


def backlog(name: str) -> None:
    named(name)
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    go = []
    signal.signal(signal.SIGUSR1, lambda *_: go.append(1))
    print("READY " + json.dumps({"pid": os.getpid(), "lport": server.getsockname()[1]}), flush=True)
    while not go:
        time.sleep(0.05)
    server.setblocking(False)
    sent = errors = 0
    kept = []  # open: the watcher marks them, and the jail's set lets them go
    while True:
        try:
            conn, _ = server.accept()
            kept.append(conn)
        except BlockingIOError:
            break
        try:
            conn.send(b"hello")
            sent += 1
        except OSError:
            errors += 1
        print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    if sys.argv[1] == "parent":
        parent(sys.argv[2])
    elif sys.argv[1] == "unshared":
        unshared(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "pass-inside":
        pass_inside(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "backlog":
        backlog(sys.argv[2])
    else:
        udp(sys.argv[2], sys.argv[3], int(sys.argv[4]), shared=sys.argv[1] == "shared")
