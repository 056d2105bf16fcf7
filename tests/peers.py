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
  tcp-sink BIND PORT             accepts connections and reads them, discarding the data
  tcp-paced HOST PORT RATE       one connection sending RATE bytes a second, a chunk every
                                 --interval (paced on absolute times)
  udp-send-fresh HOST PORT       a NEW UDP socket for every datagram (exercises the cgroup rule)
  udp-send-multi H:P,H:P ...     one UDP socket sending to every target in turn
  udp-send-child HOST PORT       forks a child that runs udp-send; READY carries child_pid
  listen-on-signal BIND PORT     no socket until SIGUSR1, then a TCP echo listener
  send-on-signal HOST PORT       no socket until SIGUSR1, then udp-send (socket born after a block)
  fork-on-signal HOST PORT       on SIGUSR1 forks a child running udp-send; READY child_pid again
  tcp-prefork BIND PORT          pre-fork echo server: listens, then forks 3 workers that accept
                                 on that one listener; READY carries workers and lport
  sleep                          no sockets
  named NAME ARG...              a bound, idle UDP socket on 127.0.0.1, in a process named NAME
                                 (any text, control characters too) with ARG... in its cmdline
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
            count(received=received)
        except TimeoutError:
            count(received=received, idle=True)  # waited 0.2 s on an empty queue


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


def tcp_sink(bind: str, port: int) -> None:
    """Accept connections and read them to the end, counting bytes (a receiver for tcp-paced)."""
    s = socket.socket(family_of(bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(8)
    ready(lport=s.getsockname()[1])

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 16):
                pass

    while True:
        conn, _ = s.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def tcp_paced(host: str, port: int, rate: int, interval: float) -> None:
    """Send `rate` bytes a second over one connection, a chunk every `interval` seconds, paced on
    absolute times (a late chunk does not shift the ones after it)."""
    s = socket.create_connection((host, port), timeout=5)
    ready(lport=s.getsockname()[1])
    chunk = b"x" * max(1, round(rate * interval))
    start = time.monotonic()
    sent = 0
    while True:
        s.sendall(chunk)
        sent += 1
        if sent % 10 == 0:
            count(sent_bytes=sent * len(chunk))
        time.sleep(max(0.0, start + sent * interval - time.monotonic()))


def udp_bind(bind: str, port: int) -> None:
    s = socket.socket(family_of(bind), socket.SOCK_DGRAM)
    s.bind((bind, port))
    ready(lport=s.getsockname()[1])
    while True:
        time.sleep(3600)


def named(name: str) -> None:
    """Become a process every /proc reader calls `name`: argv[0] is `name` (re-exec), comm its
    first 15 bytes (what a process may set for itself), so `ps`-like tools complete it from
    argv[0]. Bytes that are not UTF-8 arrive here as surrogates (fsdecode) and go out as bytes."""
    if sys.orig_argv[0] != name:
        os.execv(sys.executable, [name, *sys.orig_argv[1:]])
    with open("/proc/self/comm", "wb") as comm:
        comm.write(os.fsencode(name)[:15])
    udp_bind("127.0.0.1", 0)


def udp_send_fresh(host: str, port: int, interval: float) -> None:
    ready()
    sent = errors = 0
    while True:
        try:
            with socket.socket(family_of(host), socket.SOCK_DGRAM) as s:
                s.sendto(b"y" * 64, (host, port))
            sent += 1
        except OSError:
            errors += 1
        count(sent=sent, errors=errors)
        time.sleep(interval)


def split_target(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def udp_send_multi(targets: list[str], interval: float) -> None:
    dests = [split_target(t) for t in targets]
    s = socket.socket(family_of(dests[0][0]), socket.SOCK_DGRAM)
    s.bind(("::" if ":" in dests[0][0] else "0.0.0.0", 0))
    ready(lport=s.getsockname()[1])
    sent = errors = 0
    while True:
        for dest in dests:
            try:
                s.sendto(b"z" * 64, dest)
                sent += 1
            except OSError:
                errors += 1
        count(sent=sent, errors=errors)
        time.sleep(interval)


def udp_send_child(host: str, port: int, interval: float) -> None:
    child = os.fork()
    if child == 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the child only sends
        udp_send(host, port, interval)
        os._exit(0)
    ready(child_pid=child)
    while True:
        time.sleep(3600)


def tcp_prefork(bind: str, port: int, workers: int = 3) -> None:
    """As Apache's prefork MPM or gunicorn: one listener, inherited by every worker."""
    srv = socket.socket(family_of(bind), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(64)
    pids = []
    for _ in range(workers):
        child = os.fork()
        if child == 0:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - workers only serve
            while True:
                conn, _ = srv.accept()
                with conn:
                    while data := conn.recv(4096):
                        conn.sendall(data)
        pids.append(child)
    ready(workers=pids, lport=srv.getsockname()[1], inode=os.fstat(srv.fileno()).st_ino)
    while True:
        time.sleep(3600)


def listen_on_signal(bind: str, port: int) -> None:
    import signal

    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    ready()
    go.wait()
    tcp_listen(bind, port)


def wait_for_usr1() -> None:
    import signal

    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    ready()
    go.wait()


def send_on_signal(host: str, port: int, interval: float) -> None:
    wait_for_usr1()
    udp_send(host, port, interval)


def fork_on_signal(host: str, port: int, interval: float) -> None:
    wait_for_usr1()
    udp_send_child(host, port, interval)


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
    if a.mode == "named":
        named(a.args[0])
        return
    if a.mode == "udp-send-multi":
        udp_send_multi(a.args, a.interval)
        return
    host, port = a.args[0], int(a.args[1])
    {
        "udp-send": lambda: udp_send(host, port, a.interval),
        "udp-recv": lambda: udp_recv(host, port),
        "tcp-listen": lambda: tcp_listen(host, port),
        "tcp-prefork": lambda: tcp_prefork(host, port),
        "tcp-client": lambda: tcp_client(host, port, a.interval),
        "udp-bind": lambda: udp_bind(host, port),
        "tcp-sink": lambda: tcp_sink(host, port),
        "tcp-paced": lambda: tcp_paced(host, port, int(a.args[2]), a.interval),
        "udp-send-fresh": lambda: udp_send_fresh(host, port, a.interval),
        "udp-send-child": lambda: udp_send_child(host, port, a.interval),
        "listen-on-signal": lambda: listen_on_signal(host, port),
        "send-on-signal": lambda: send_on_signal(host, port, a.interval),
        "fork-on-signal": lambda: fork_on_signal(host, port, a.interval),
    }[a.mode]()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
