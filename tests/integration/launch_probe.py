"""What a jailed command sees, run *as* the jailed command (stdlib only, any user, any python3).

    launch_probe.py [--exit N] ACTION ...     prints one JSON object, then exits N

Actions (each adds a key to the JSON):
  sockets              errno (0 = worked) of socket() per family, of socket() with the domain's
                       upper 32 bits set, and of io_uring_setup()
  connect:HOST:PORT    errno of a TCP connect (0 = connected) and the line the server sent back
  loopback             a TCP listener on 127.0.0.1 connected to itself: "ok" or the errno
  status               Uid/Gid/Groups lines of /proc/self/status, and NoNewPrivs
  seccomp-self         install netjail's socket filter in this very process first

    launch_probe.py listen BIND                a TCP server: prints "READY <port>", then for each
                                               client "PEER <address>", and sends "hello\\n"
"""

from __future__ import annotations

import ctypes
import errno
import json
import socket
import sys

SYS_SOCKET = 41  # x86_64
SYS_IO_URING_SETUP = 425
FAMILIES = {
    "inet": (socket.AF_INET, socket.SOCK_STREAM),
    "inet6": (socket.AF_INET6, socket.SOCK_STREAM),
    "packet": (socket.AF_PACKET, socket.SOCK_RAW),
    "unix": (socket.AF_UNIX, socket.SOCK_STREAM),
    "netlink": (socket.AF_NETLINK, socket.SOCK_RAW),
    "vsock": (40, socket.SOCK_STREAM),  # AF_VSOCK: not one of the three, still denied
}


def try_socket(family: int, kind: int) -> int:
    try:
        socket.socket(family, kind).close()
    except OSError as exc:
        return exc.errno or -1
    return 0


def raw_syscall(*args: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(*(ctypes.c_long(a) for a in args))
    if ret >= 0:
        import os

        os.close(ret)
        return 0
    return ctypes.get_errno()


def sockets() -> dict[str, int]:
    out = {name: try_socket(*fk) for name, fk in FAMILIES.items()}
    # AF_INET with garbage in the upper half of the register: the kernel reads an int (2).
    out["inet_high_bits"] = raw_syscall(SYS_SOCKET, (1 << 32) | socket.AF_INET, socket.SOCK_DGRAM, 0)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    out["io_uring_setup"] = raw_syscall(SYS_IO_URING_SETUP, 4, ctypes.addressof(params))
    return out


def connect(host: str, port: int) -> dict[str, object]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect((host, port))
            return {"errno": 0, "reply": s.makefile().readline().strip()}
    except TimeoutError:
        return {"errno": errno.ETIMEDOUT, "reply": ""}
    except OSError as exc:
        return {"errno": exc.errno or -1, "reply": ""}


def loopback() -> str | int:
    try:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname(), timeout=3) as c:
                conn, _ = srv.accept()
                with conn:
                    conn.sendall(b"ping")
                    return "ok" if c.recv(4) == b"ping" else "bad echo"
    except OSError as exc:
        return exc.errno or -1


def status() -> dict[str, str]:
    keys = ("Uid", "Gid", "Groups", "NoNewPrivs")
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in keys:
                out[key] = " ".join(value.split())
    return out


def listen(bind: str) -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, 0))
    srv.listen(16)
    print(f"READY {srv.getsockname()[1]}", flush=True)
    while True:
        conn, addr = srv.accept()
        with conn:
            print(f"PEER {addr[0]}", flush=True)
            conn.sendall(b"hello\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["listen"]:
        listen(argv[1])
        return 0
    code = 0
    if argv[:1] == ["--exit"]:
        code, argv = int(argv[1]), argv[2:]
    result: dict[str, object] = {}
    for action in argv:
        if action == "seccomp-self":
            from netjail.backends.launch.seccomp_filter import install_socket_filter

            install_socket_filter()
        elif action == "sockets":
            result["sockets"] = sockets()
        elif action.startswith("connect:"):
            host, _, port = action[len("connect:") :].rpartition(":")
            result[action] = connect(host, int(port))
        elif action == "loopback":
            result["loopback"] = loopback()
        elif action == "status":
            result["status"] = status()
        else:
            raise SystemExit(f"unknown action {action}")
    print(json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
