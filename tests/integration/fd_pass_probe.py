"""Socket passing over a unix socket (SCM_RIGHTS), the two halves of issue 8's finding 5.

  give UNIX_PATH tcp|udp HOST PORT   an unjailed helper: a socket connected to HOST:PORT, handed
                                     to whoever connects to UNIX_PATH; it keeps its own copy
                                     (tcp-unbound: a TCP socket neither bound nor connected)
  fresh-udp HOST PORT                on SIGUSR1, a connected UDP socket of its own, sending
  take UNIX_PATH [HOST PORT WAIT]    the jailed side: on SIGUSR1 it fetches the socket, puts it
                                     on the fd number of a placeholder it opened at start (so
                                     its fd count does not move) and sends through it; with
                                     HOST PORT it first waits WAIT seconds, then connects there

Prints `READY {json}` once set up and `COUNT {json}` lines (sent, errors) like tests/peers.py.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys
import threading
import time


def ready(**info: object) -> None:
    print("READY " + json.dumps({"pid": os.getpid(), **info}), flush=True)


def give(path: str, proto: str, host: str, port: int) -> None:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    inet = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    if proto != "tcp-unbound":
        inet.connect((host, port))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o666)
    server.listen()
    ready(lport=inet.getsockname()[1], fd=inet.fileno())
    while True:
        conn, _ = server.accept()
        conn.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [inet.fileno()]))])
        conn.close()


def wait_for_signal(**info: object) -> None:
    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    ready(**info)
    go.wait()


def send_forever(sock: socket.socket) -> None:
    sent = errors = 0
    while True:
        try:
            sock.send(b"y" * 100)
            sent += 1
        except OSError:
            errors += 1
        print("COUNT " + json.dumps({"sent": sent, "errors": errors}), flush=True)
        time.sleep(0.05)


def fresh_udp(host: str, port: int) -> None:
    wait_for_signal()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))  # sends nothing: it only fixes the peer
    send_forever(sock)


def take(path: str, connect_to: tuple[str, int] | None = None, wait: float = 0.0) -> None:
    placeholder = os.open("/dev/null", os.O_RDONLY)
    wait_for_signal(placeholder=placeholder)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1, socket.CMSG_SPACE(fds.itemsize))
        fds.frombytes(ancdata[0][2][: fds.itemsize])
    os.dup2(fds[0], placeholder)  # same fd count as before: nothing for a cheap rescan to see
    os.close(fds[0])
    sock = socket.socket(fileno=placeholder)
    if connect_to is not None:
        time.sleep(wait)
        print("CONNECTING", flush=True)
        sock.settimeout(0.5)
        try:
            sock.connect(connect_to)
        except OSError:
            print("COUNT " + json.dumps({"sent": 0, "errors": 1}), flush=True)
            return
    send_forever(sock)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "give":
        give(args[0], args[1], args[2], int(args[3]))
    elif mode == "fresh-udp":
        fresh_udp(args[0], int(args[1]))
    elif len(args) == 4:
        take(args[0], (args[1], int(args[2])), float(args[3]))
    else:
        take(args[0])
