"""Servers whose sockets an address rule cannot tell apart from their neighbours'.

  reuseport-udp HOST PORT   a UDP socket sharing HOST:PORT with its peers (SO_REUSEPORT):
                            echoes every datagram with its PID in front
  reuseport-tcp HOST PORT   a TCP listener sharing HOST:PORT (SO_REUSEPORT): each accepted
                            connection gets its PID, then every line it sends is echoed
  late-udp HOST PORT        on SIGUSR1 (sent once it is jailed), a UDP socket connected to
                            HOST:PORT, counting what it receives
  many HOST TPORT UPORT     holds a wildcard TCP listener, a listener on HOST, an established
                            TCP flow to HOST:TPORT, a UDP socket connected to HOST:UPORT and an
                            unconnected UDP socket on 0.0.0.0; every 50 ms it sends on the flow
                            and the connected UDP socket, and it echoes on the listeners'
                            connections and the unconnected UDP socket

Prints `READY {json}` once set up, then `COUNT {json}` with what it received, per socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time

_lock = threading.Lock()
_counts: dict[str, int] = {}


def ready(**info: object) -> None:
    print("READY " + json.dumps({"pid": os.getpid(), **info}), flush=True)


def bump(key: str) -> None:
    with _lock:
        _counts[key] = _counts.get(key, 0) + 1
        print("COUNT " + json.dumps(_counts), flush=True)


def shared(kind: int, host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    return s


def echo_udp(s: socket.socket, key: str, prefix: bytes = b"") -> None:
    while True:
        data, peer = s.recvfrom(2048)
        bump(key)
        s.sendto(prefix + data, peer)


def serve_tcp(listener: socket.socket, key: str, greeting: bytes = b"") -> None:
    listener.listen(128)
    while True:
        conn, _ = listener.accept()
        bump(key)
        threading.Thread(target=echo_lines, args=(conn, key + "-data", greeting), daemon=True).start()


def echo_lines(conn: socket.socket, key: str, greeting: bytes) -> None:
    with conn:
        if greeting:
            conn.sendall(greeting)
        while data := conn.recv(2048):
            bump(key)
            conn.sendall(data)


def reuseport(kind: int, host: str, port: int) -> None:
    s = shared(kind, host, port)
    me = f"{os.getpid()} ".encode()
    if kind == socket.SOCK_DGRAM:
        ready(port=s.getsockname()[1])
        echo_udp(s, "received", me)
    else:
        s.listen(128)  # before READY: a client may connect at once
        threading.Thread(target=serve_tcp, args=(s, "accepted", me), daemon=True).start()
        ready(port=s.getsockname()[1])
        while True:
            time.sleep(3600)


def many(host: str, tport: int, uport: int) -> None:
    wild = socket.create_server(("0.0.0.0", 0))
    specific = socket.create_server((host, 0))
    flow = socket.create_connection((host, tport))
    connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    connected.connect((host, uport))
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unconnected.bind(("0.0.0.0", 0))
    for sock, key in ((wild, "wild"), (specific, "specific")):
        threading.Thread(target=serve_tcp, args=(sock, key), daemon=True).start()
    threading.Thread(target=echo_udp, args=(unconnected, "unconnected"), daemon=True).start()
    threading.Thread(target=drain, args=(flow, "flow"), daemon=True).start()
    threading.Thread(target=drain, args=(connected, "connected"), daemon=True).start()
    socks = {
        "wild": wild,
        "specific": specific,
        "flow": flow,
        "connected": connected,
        "unconnected": unconnected,
    }
    ready(
        fds={k: s.fileno() for k, s in socks.items()},
        ports={k: s.getsockname()[1] for k, s in socks.items()},
    )
    while True:
        for s in (flow, connected):
            with contextlib.suppress(OSError):  # EPERM while jailed
                s.send(b"x\n")
        time.sleep(0.05)


def drain(s: socket.socket, key: str) -> None:
    while True:
        try:
            if not s.recv(2048):
                return
        except OSError:
            time.sleep(0.05)  # ECONNREFUSED on a connected UDP socket
            continue
        bump(key)


def late_udp(host: str, port: int) -> None:
    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    ready()
    go.wait()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.connect((host, port))
    bump(f"port={s.getsockname()[1]}")
    while True:
        s.recv(2048)
        bump("received")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "reuseport-udp":
        reuseport(socket.SOCK_DGRAM, args[0], int(args[1]))
    elif mode == "late-udp":
        late_udp(args[0], int(args[1]))
    elif mode == "reuseport-tcp":
        reuseport(socket.SOCK_STREAM, args[0], int(args[1]))
    else:
        many(args[0], int(args[1]), int(args[2]))
