"""The nf_tables generation id: one netlink round trip that says whether any ruleset changed.

The kernel bumps the id with every committed nftables transaction in the network namespace (any
table, any writer; counters moving do not count). netjail reads it before planning and again
before committing: a change in between means another writer got there first, and the plan is
made again from a fresh listing. A watcher pass whose wanted rules were verified at the current
id skips the listing altogether (docs/firewall-nftables.md).

libnftables has no call for it, so this speaks NFT_MSG_GETGEN on NETLINK_NETFILTER itself.
"""

from __future__ import annotations

import _socket as socket  # socket.py's C core: socket.py builds enums at import (~3 ms)
import errno
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NFT_MSG_NEWGEN = 15
NFTA_GEN_ID = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NFGEN = struct.Struct("=BBH")  # family, version, res_id (big endian, unused)
_ATTR = struct.Struct("=HH")


def read_genid() -> int | None:
    """The current generation id (None: no nf_tables in this kernel, or not allowed to ask)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except OSError:
        return None
    try:
        body = _NFGEN.pack(socket.AF_UNSPEC, 0, 0)
        msg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
        sock.sendto(_NLMSG.pack(_NLMSG.size + len(body), msg_type, NLM_F_REQUEST, 1, 0) + body, (0, 0))
        data = sock.recv(4096)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EOPNOTSUPP, errno.ENOENT):
            return None
        raise
    finally:
        sock.close()
    return parse_genid(data)


def parse_genid(data: bytes) -> int | None:
    """NFTA_GEN_ID out of a NEWGEN reply (None for an error reply)."""
    if len(data) < _NLMSG.size:
        return None
    length, msg_type, _flags, _seq, _pid = _NLMSG.unpack_from(data)
    if msg_type == NLMSG_ERROR or msg_type & 0xFF != NFT_MSG_NEWGEN:
        return None
    off = _NLMSG.size + _NFGEN.size
    end = min(length, len(data))
    while off + _ATTR.size <= end:
        alen, atype = _ATTR.unpack_from(data, off)
        if alen < _ATTR.size:
            return None
        if atype & 0x3FFF == NFTA_GEN_ID and alen >= _ATTR.size + 4:
            (gen,) = struct.unpack_from("!I", data, off + _ATTR.size)
            return int(gen)
        off += (alen + 3) & ~3
    return None
