"""Real network peers for the tests, run as separate processes (`python peers.py MODE ...`).

Every mode prints one line `READY {json}` on stdout once its sockets exist, then keeps going
until killed. Counts of what was sent/received are appended to stdout as `COUNT {json}` lines
when `--report` is given, so a test can read what really crossed the network at the receiver.

Modes:
  udp-send HOST PORT             bound UDP socket sending a datagram every --interval seconds
  udp-recv BIND PORT             counts datagrams received (prints COUNT lines)
  tcp-listen BIND PORT           echo server (one thread per client)
  tcp-client HOST PORT           connects once, sends a line every --interval, reads the echo
  udp-bind BIND PORT             a bound, idle UDP socket
  sleep                          no sockets
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time


def ready(**info: object) -> None:
    info.setdefault("pid", os.getpid())
    print("READY " + json.dumps(info), flush=True)


def count(**info: object) -> None:
    print("COUNT " + json.dumps(info), flush=True)


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_send(host: str, port: int, interval: float) -> None:
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.bind(("::" if ":" in host else "0.0.0.0", 0))
    ready(lport=s.getsockname()[1])
    sent = errors = 0
    while True:
        try:
            s.sendto(b"x" * 64, (host, port))
            sent += 1
        except OSError:
            errors += 1  # EPERM once the packet is dropped in OUTPUT
        if (sent + errors) % 10 == 0:
            count(sent=sent, errors=errors)
        time.sleep(interval)


def udp_recv(bind: str, port: int) -> None:
    s = socket.socket(family_of(bind), socket.SOCK_DGRAM)
    s.bind((bind, port))
    ready(lport=s.getsockname()[1])
    received = 0
    s.settimeout(0.2)
    while True:
        try:
            s.recv(2048)
            received += 1
        except TimeoutError:
            pass
        count(received=received)


def tcp_listen(bind: str, port: int) -> None:
    s = socket.socket(family_of(bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(64)
    ready(lport=s.getsockname()[1])

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def tcp_client(host: str, port: int, interval: float) -> None:
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(1.0)
    ready(lport=s.getsockname()[1])
    ok = fail = 0
    while True:
        try:
            s.sendall(b"ping\n")
            if s.recv(64):
                ok += 1
            else:
                count(ok=ok, fail=fail, closed=True)
                return
        except TimeoutError:
            fail += 1
        except OSError as exc:
            count(ok=ok, fail=fail, error=exc.errno)
            time.sleep(interval)
            continue
        count(ok=ok, fail=fail)
        time.sleep(interval)


def udp_bind(bind: str, port: int) -> None:
    s = socket.socket(family_of(bind), socket.SOCK_DGRAM)
    s.bind((bind, port))
    ready(lport=s.getsockname()[1])
    while True:
        time.sleep(3600)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("args", nargs="*")
    p.add_argument("--interval", type=float, default=0.05)
    a = p.parse_args()
    if a.mode == "sleep":
        ready()
        while True:
            time.sleep(3600)
    host, port = a.args[0], int(a.args[1])
    {
        "udp-send": lambda: udp_send(host, port, a.interval),
        "udp-recv": lambda: udp_recv(host, port),
        "tcp-listen": lambda: tcp_listen(host, port),
        "tcp-client": lambda: tcp_client(host, port, a.interval),
        "udp-bind": lambda: udp_bind(host, port),
    }[a.mode]()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
