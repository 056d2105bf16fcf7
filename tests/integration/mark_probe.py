"""Sockets a process made before it was jailed and uses only afterwards (socket marks).

  pool N HOST PORT         2N unbound TCP sockets made at start; each SIGUSR1 spends N of them:
                           connect to HOST:PORT, send, close, 0.1 s at most each
  threadpool N HOST PORT   pool, its sockets in a thread's own fd table (unshare(CLONE_FILES)):
                           /proc/PID/fd does not show them
  forkstorm HOST PORT S    forks a child every 2 ms for S seconds; each child, 0.4 s after its
                           birth, connects to HOST:PORT and sends if its cgroup is not its
                           parent's (born outside the jail its parent was moved into)
  iouring                  holds an io_uring instance (io_uring_setup) and sleeps
  sendto HOST PORT OTHER   a UDP socket connected to PORT; on SIGUSR1 it sendto()s OTHER
  pktinfo HOST PORT SRC    a UDP socket bound to HOST; on SIGUSR1 it sends to PORT with
                           IP_PKTINFO choosing the source address SRC

Prints `READY {json}` once set up and `COUNT {json}` lines (sent, errors) like tests/peers.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # linux/in.h; Python names it only from 3.14 on


def ready(**info: object) -> None:
    print("READY " + json.dumps({"pid": os.getpid(), **info}), flush=True)


def count(sent: int, errors: int) -> None:
    print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)


def on_signal(**info: object) -> threading.Semaphore:
    go = threading.Semaphore(0)
    signal.signal(signal.SIGUSR1, lambda *_: go.release())
    ready(**info)
    return go


def pool(n: int, host: str, port: int) -> None:
    socks = [socket.socket() for _ in range(2 * n)]  # unbound: nothing for sock_diag to list
    spend(socks, on_signal(fds=[s.fileno() for s in socks]), n, host, port)


def spend(socks: list[socket.socket], go: threading.Semaphore, n: int, host: str, port: int) -> None:
    sent = errors = 0
    for round_ in range(2):
        go.acquire()
        for s in socks[round_ * n : (round_ + 1) * n]:
            s.settimeout(0.1)
            try:
                s.connect((host, port))
                s.sendall(b"z" * 100)
                sent += 1
            except OSError:
                errors += 1
            s.close()
            count(sent, errors)
        print("ROUND " + json.dumps({"round": round_}), flush=True)
    go.acquire()


def threadpool(n: int, host: str, port: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    go = threading.Semaphore(0)
    signal.signal(signal.SIGUSR1, lambda *_: go.release())  # handlers live in the main thread
    made = threading.Event()
    socks: list[socket.socket] = []

    def own_table() -> None:
        if libc.unshare(0x400) != 0:  # CLONE_FILES: this thread's fds are its own from here on
            raise OSError(ctypes.get_errno(), "unshare(CLONE_FILES)")
        socks.extend(socket.socket() for _ in range(2 * n))
        made.set()
        spend(socks, go, n, host, port)

    worker = threading.Thread(target=own_table, daemon=True)
    worker.start()
    made.wait()
    ready(fds=[])  # the fd numbers name the thread's table, not the process's
    worker.join()


def forkstorm(host: str, port: int, seconds: float) -> None:
    def cgroup(pid: int | str) -> str:
        with open(f"/proc/{pid}/cgroup") as f:
            return f.read()

    ready()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.fork() == 0:
            time.sleep(0.4)
            try:
                if cgroup("self") != cgroup(os.getppid()):
                    with socket.create_connection((host, port), timeout=0.5) as s:
                        s.sendall(b"escaped")
            except OSError:
                pass
            os._exit(0)
        time.sleep(0.002)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
    time.sleep(3600)


def iouring() -> None:
    import ctypes

    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    ready(ring=ctypes.CDLL(None, use_errno=True).syscall(425, 4, params))  # io_uring_setup
    time.sleep(3600)


def send_loop(send: object) -> None:
    sent = errors = 0
    while True:
        try:
            send()  # type: ignore[operator]
            sent += 1
        except OSError:
            errors += 1
        count(sent, errors)
        time.sleep(0.05)


def sendto(host: str, port: int, other: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))  # fixes the peer, sends nothing
    go = on_signal(fd=s.fileno(), lport=s.getsockname()[1])
    go.acquire()
    send_loop(lambda: s.sendto(b"u" * 50, (host, other)))


def pktinfo(host: str, port: int, src: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    go = on_signal(fd=s.fileno(), lport=s.getsockname()[1])
    go.acquire()
    # struct in_pktinfo: ifindex, spec_dst (the source to use), addr
    info = struct.pack("=i4s4s", 0, socket.inet_aton(src), b"\0" * 4)
    send_loop(lambda: s.sendmsg([b"p" * 50], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, (host, port)))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "pool":
        pool(int(args[0]), args[1], int(args[2]))
    elif mode == "iouring":
        iouring()
    elif mode == "forkstorm":
        forkstorm(args[0], int(args[1]), float(args[2]))
    elif mode == "threadpool":
        threadpool(int(args[0]), args[1], int(args[2]))
    elif mode == "sendto":
        sendto(args[0], int(args[1]), int(args[2]))
    else:
        pktinfo(args[0], int(args[1]), args[2])
