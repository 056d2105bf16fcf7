"""Run inside a netns jail: what reaches this host's own side of the jail's link (its gateways).

    host_probe.py ACTION ...     prints one JSON object

  udplite:PORT        20 UDP-Lite datagrams (IPPROTO_UDPLITE, 136) to each gateway, v4 and v6:
                      the errno of the last send (0: the kernel sent them)
  ping                an ICMP echo to the IPv4 gateway (raw socket: run as root): "reply" or
                      "none" within a second
  connect:HOST:PORT   a TCP connect and the line the server sends ("[v6]" hosts too)
  udp:HOST:PORT       20 UDP datagrams: the errno of the last send (0: the kernel sent them)
  udp-wait:LPORT:HOST:PORT:SECS
                      from local port LPORT, 3 datagrams to HOST:PORT, then every datagram
                      that arrives within SECS: {source address: count}
Stdlib only: it runs as the jailed user with whatever python3 it can execute.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time

IPPROTO_UDPLITE = 136


def gateways() -> tuple[str, str | None]:
    gw4 = ""
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                gw4 = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    gw6 = None
    try:
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                fields = line.split()
                if fields[0] == "0" * 32 and fields[1] == "00" and fields[4] != "0" * 32:
                    gw6 = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(fields[4]))
    except FileNotFoundError:
        pass
    return gw4, gw6


def udplite(port: int) -> dict[str, object]:
    gw4, gw6 = gateways()
    out: dict[str, object] = {"gw4": gw4, "gw6": gw6}
    for key, family, host in (("v4", socket.AF_INET, gw4), ("v6", socket.AF_INET6, gw6)):
        if not host:
            continue
        err = 0
        with socket.socket(family, socket.SOCK_DGRAM, IPPROTO_UDPLITE) as s:
            for _ in range(20):
                try:
                    s.sendto(b"udplite", (host, port))
                except OSError as exc:
                    err = exc.errno or -1
                time.sleep(0.01)
        out[key] = err
    return out


def ping() -> str:
    gw4, _ = gateways()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        body = struct.pack("!BBHHH", 8, 0, 0, 0x4E4A, 1) + b"netjail!"  # even length
        csum = sum(struct.unpack(f"!{len(body) // 2}H", body))
        csum = (csum >> 16) + (csum & 0xFFFF)
        body = body[:2] + struct.pack("!H", ~(csum + (csum >> 16)) & 0xFFFF) + body[4:]
        s.sendto(body, (gw4, 0))
        end = time.monotonic() + 1.0
        while (left := end - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            packet = s.recv(2048)
            ihl = (packet[0] & 0x0F) * 4
            if packet[ihl] == 0 and packet[ihl + 4 : ihl + 6] == b"\x4e\x4a":
                return "reply"
    return "none"


def connect(host: str, port: int) -> str:
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=3) as s:
            return s.recv(100).decode().strip()
    except OSError as exc:
        return f"errno {exc.errno}"


def udp(host: str, port: int) -> int:
    host = host.strip("[]")
    err = 0
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(20):
            try:
                s.sendto(b"netjail", (host, port))
            except OSError as exc:
                err = exc.errno or -1
            time.sleep(0.01)
    return err


def udp_wait(lport: int, host: str, port: int, secs: float) -> dict[str, int]:
    got: dict[str, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", lport))
        for _ in range(3):
            s.sendto(b"netjail", (host, port))
        end = time.monotonic() + secs
        while (left := end - time.monotonic()) > 0:
            if select.select([s], [], [], left)[0]:
                _, (src, _) = s.recvfrom(2048)
                got[src] = got.get(src, 0) + 1
    return got


def main(argv: list[str]) -> int:
    result: dict[str, object] = {}
    for action in argv:
        if action.startswith("udplite:"):
            result[action] = udplite(int(action.split(":", 1)[1]))
        elif action == "ping":
            result[action] = ping()
        elif action.startswith("udp-wait:"):
            lport, host, port, secs = action[len("udp-wait:") :].split(":")
            result[action] = udp_wait(int(lport), host, int(port), float(secs))
        elif action.startswith("udp:"):
            host, _, port = action[len("udp:") :].rpartition(":")
            result[action] = udp(host, int(port))
        elif action.startswith("connect:"):
            host, _, port = action[len("connect:") :].rpartition(":")
            result[action] = connect(host, int(port))
        else:
            raise SystemExit(f"unknown action {action}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
