"""AF_PACKET sockets, which netfilter never sees: /proc/<pid>/net/packet, joined by inode.

A packet socket receives frames before the IP stack's hooks and sends them straight to the
device, so a jail's rules, its cgroup match and socket marks all miss it: a blocked tcpdump
keeps capturing, a blocked DHCP client keeps talking. netjail cannot cut such a socket from
outside; it can only say so, and point at a seccomp relaunch, which refuses to create one.

The table lists only packet sockets of one network namespace (usually none, a one-line file),
so reading it once per namespace costs one small read; `socket:[INODE]` fd links the
inventory reads anyway say who holds each one.
"""

from __future__ import annotations

import socket

from netjail.backends.model import UnfilterableSocket
from netjail.backends.system.procio import read_all

_TYPES: dict[int, str] = {int(socket.SOCK_RAW): "raw", int(socket.SOCK_DGRAM): "dgram"}
PROTOCOL_NAMES = {0x0003: "all", 0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp", 0x88CC: "lldp"}


def parse_packet_table(text: str, names: dict[int, str] | None = None) -> dict[int, UnfilterableSocket]:
    """inode -> socket for the lines of /proc/net/packet:
    `sk RefCnt Type Proto Iface R Rmem User Inode`, Proto and sk in hex. `names` maps an
    ifindex to its interface name (only meaningful for netjail's own namespace)."""
    out: dict[int, UnfilterableSocket] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9:
            continue
        try:
            kind, proto, ifindex, inode = int(fields[2]), int(fields[3], 16), int(fields[4]), int(fields[8])
        except ValueError:
            continue
        if not inode:
            continue
        name = "" if names is None else ("any" if ifindex == 0 else names.get(ifindex, ""))
        out[inode] = UnfilterableSocket(
            "packet", inode, _TYPES.get(kind, f"SOCK_TYPE_{kind}"), proto, ifindex, name
        )
    return out


def read_packet_table(base: str, own_namespace: bool) -> dict[int, UnfilterableSocket]:
    """The packet sockets of the namespace of process `base` (/proc/PID); OSError when it is
    gone or not ours to read."""
    text = read_all(f"{base}/net/packet").decode("ascii", "replace")
    if text.count("\n") <= 1:
        return {}  # the header alone: the usual case, no interface names needed
    names = dict(socket.if_nameindex()) if own_namespace else None
    return parse_packet_table(text, names)


def describe(s: UnfilterableSocket) -> str:
    """`packet socket socket:[N] (raw, all protocols, on lo)` for people."""
    proto = PROTOCOL_NAMES.get(s.protocol, f"ethertype {s.protocol:#06x}")
    proto = "all protocols" if proto == "all" else "no protocol yet" if s.protocol == 0 else proto
    where = "every interface" if s.ifindex == 0 else s.interface or f"ifindex {s.ifindex}"
    return f"{s.kind} socket socket:[{s.inode}] ({s.type}, {proto}, on {where})"
