"""Jail counters of the nftables backend: netjail's named counters, in one netlink dump.

Each jail has four counter objects in `table inet netjail` (nft_plan.py): nj-<jail>-drop4,
-drop6, -allow4, -allow6, shared by its out, in and forward chains. One NFT_MSG_GETOBJ dump,
filtered by the kernel to that table and to counters, returns them all, whatever the number of
rules. It is spoken here directly, like counters.py reads the xtables blob: libnftables would cost
a `netjail counters` ~40 ms of loading before its first byte (measured: 20 ms to import the
binding, 22 ms for a context), the dump itself well under a millisecond. `netjail counters`
imports this module alone: no firewall interface, no planner (tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import _socket as socket  # socket.py's C core: socket.py builds enums at import (~3 ms)
import errno
import struct
from collections.abc import Mapping

from netjail.backends.errors import InsufficientPrivilege, OperationFailed
from netjail.backends.model import Counters, JailCounters

TABLE_NAME = "netjail"
NETLINK_NETFILTER = 12
NFPROTO_INET = 1
NFT_MSG_NEWOBJ = 18
NFT_MSG_GETOBJ = 19
MSG_TYPE = (10 << 8) | NFT_MSG_GETOBJ  # NFNL_SUBSYS_NFTABLES
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE, NFTA_OBJ_DATA = 1, 2, 3, 4
NFT_OBJECT_COUNTER = 1
NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS = 1, 2
_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")
_ERR = struct.Struct("=i")
_U64 = struct.Struct("!Q")
_SLOT = {"drop4": 0, "allow4": 2, "drop6": 4, "allow6": 6}


def _attr(kind: int, payload: bytes) -> bytes:
    data = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return data + bytes(-len(data) % 4)


def _one_object(data: bytes, off: int, end: int, found: dict[str, tuple[int, int]]) -> None:
    """Name and counts of one NEWOBJ message's attributes (the rest skipped): a flat loop, as a
    TUI tick reads every jail's four counters twice a second."""
    unpack = _ATTR.unpack_from
    name = b""
    packets = nbytes = 0
    while off + 4 <= end:
        length, kind = unpack(data, off)
        if length < 4:
            return
        kind &= 0x3FFF
        if kind == NFTA_OBJ_NAME:
            name = data[off + 4 : off + length].rstrip(b"\0")
        elif kind == NFTA_OBJ_DATA:
            inner, stop = off + 4, off + length
            while inner + 4 <= stop:
                ilen, ikind = unpack(data, inner)
                if ilen < 4:
                    break
                ikind &= 0x3FFF
                if ikind == NFTA_COUNTER_PACKETS:
                    (packets,) = _U64.unpack_from(data, inner + 4)
                elif ikind == NFTA_COUNTER_BYTES:
                    (nbytes,) = _U64.unpack_from(data, inner + 4)
                inner += (ilen + 3) & ~3
        off += (length + 3) & ~3
    if name:
        found[name.decode()] = (packets, nbytes)


def dump_counters(table: str = TABLE_NAME) -> dict[str, tuple[int, int]]:
    """name -> (packets, bytes) of every counter object in `inet <table>` (empty: no table)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except PermissionError:
        raise InsufficientPrivilege("reading firewall counters needs root (CAP_NET_ADMIN)") from None
    except OSError as exc:
        raise OperationFailed(f"cannot open a netfilter netlink socket: {exc.strerror}") from None
    found: dict[str, tuple[int, int]] = {}
    try:
        body = _NFGEN.pack(NFPROTO_INET, 0, 0)
        body += _attr(NFTA_OBJ_TABLE, table.encode() + b"\0")
        body += _attr(NFTA_OBJ_TYPE, struct.pack("!I", NFT_OBJECT_COUNTER))
        flags = NLM_F_REQUEST | NLM_F_DUMP
        sock.sendto(_NLMSG.pack(_NLMSG.size + len(body), MSG_TYPE, flags, 1, 0) + body, (0, 0))
        while True:
            data = sock.recv(65536)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
                if length < _NLMSG.size:
                    return found
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    (err,) = _ERR.unpack_from(data, off + _NLMSG.size)
                    if err in (-errno.ENOENT, 0):
                        return found
                    if err in (-errno.EPERM, -errno.EACCES):
                        raise InsufficientPrivilege("reading firewall counters needs root (CAP_NET_ADMIN)")
                    raise OperationFailed(f"nftables counter dump failed: {errno.errorcode.get(-err, err)}")
                if kind & 0xFF == NFT_MSG_NEWOBJ:
                    _one_object(data, off + _NLMSG.size + _NFGEN.size, off + length, found)
                off += (length + 3) & ~3
    finally:
        sock.close()


def counters_by_jail(counters: Mapping[str, tuple[int, int]]) -> dict[str, list[int]]:
    """jail -> [dropped4 packets, bytes, allowed4 packets, bytes, dropped6 ..., allowed6 ...]:
    the suffix after the last '-' says which (a jail name may hold '-' itself)."""
    out: dict[str, list[int]] = {}
    for name, (packets, nbytes) in counters.items():
        if not name.startswith("nj-"):
            continue
        jail, _, suffix = name[3:].rpartition("-")
        if suffix not in _SLOT or not jail:
            continue
        acc = out.setdefault(jail, [0] * 8)
        acc[_SLOT[suffix]] += packets
        acc[_SLOT[suffix] + 1] += nbytes
    return out


def read_counters() -> Mapping[str, JailCounters]:
    """Every jail's counters, both families, one kernel dump."""
    out: dict[str, JailCounters] = {}
    for jail, t in sorted(counters_by_jail(dump_counters()).items()):
        c4, c6 = Counters(t[0], t[1], t[2], t[3]), Counters(t[4], t[5], t[6], t[7])
        out[jail] = JailCounters(jail=jail, total=c4 + c6, inet=c4, inet6=c6)
    return out
