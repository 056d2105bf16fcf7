"""Whether this kernel has nf_tables, asked the way `nft` asks it: one NFT_MSG_GETGEN request
on a NETLINK_NETFILTER socket (the ruleset's generation id, what nft reads before every
transaction). nf_tables answers NFT_MSG_NEWGEN; a kernel without it answers EINVAL (nfnetlink
knows no subsystem 10). ~0.1 ms, no state changed.

Why not /sys/module/nf_tables or /proc/modules: a built-in nf_tables has neither (no module
parameters, so no sysfs directory; CONFIG_MODULES=n has no /proc/modules at all; this machine is
such a kernel). With modules, an nf_tables not loaded yet is loaded by this request, as by any
`nft` command (nfnetlink requests module nfnetlink-subsys-10): that loads code and registers
no hook, table or rule.

nfnetlink answers only CAP_NET_ADMIN (EPERM otherwise): without it the module directory is the
one hint left, and the answer may be "unknown".
"""

from __future__ import annotations

import _socket as socket  # socket.py's C core: socket.py builds enums at import (~3 ms)
import errno
import os
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_NFGENMSG = struct.Struct("=BBH")  # struct nfgenmsg: family, version, res_id (big endian)
_ERRNO = struct.Struct("=i")
SYS_MODULE = "/sys/module/nf_tables"


def _request() -> bytes:
    size = _HEADER.size + _NFGENMSG.size
    kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN
    return _HEADER.pack(size, kind, NLM_F_REQUEST, 1, 0) + _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0)


def answer(reply: bytes) -> tuple[bool | None, str]:
    """What one reply to the request says: (has nf_tables, how it was told); None: unknown."""
    if len(reply) < _HEADER.size:
        return None, "the kernel's answer to NFT_MSG_GETGEN was cut short"
    _size, kind, _flags, _seq, _pid = _HEADER.unpack_from(reply)
    if kind == NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN:
        return True, "the kernel answered an nf_tables request (NFT_MSG_GETGEN)"
    if kind == NLMSG_ERROR and len(reply) >= _HEADER.size + _ERRNO.size:
        err = -_ERRNO.unpack_from(reply, _HEADER.size)[0]
        if err in (errno.EPERM, errno.EACCES):
            return None, "nfnetlink answers only CAP_NET_ADMIN"
        return False, f"the kernel refused an nf_tables request (NFT_MSG_GETGEN: {os.strerror(err)})"
    return None, f"unexpected netlink message type {kind:#x} in answer to NFT_MSG_GETGEN"


def probe() -> tuple[bool | None, str]:
    """(has nf_tables: True, False or None for unknown, why)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except OSError as exc:  # no nfnetlink at all: no nf_tables either
        return False, f"no netfilter netlink socket ({exc.strerror})"
    try:
        sock.settimeout(2.0)
        sock.sendto(_request(), (0, 0))
        found, why = answer(sock.recv(8192))
    except OSError as exc:  # includes the timeout
        found, why = None, f"NFT_MSG_GETGEN: {exc.strerror or exc}"
    finally:
        sock.close()
    if found is None and os.path.isdir(SYS_MODULE):
        return True, f"nf_tables module loaded ({SYS_MODULE}); {why}"
    return found, why


NFT_MSG_NEWTABLE = 0
NFT_MSG_GETTABLE = 1
NFT_MSG_NEWCHAIN = 3
NFT_MSG_GETCHAIN = 4
NFTA_TABLE_NAME = 1
NLMSG_DONE = 3
NLM_F_DUMP = 0x300
NFPROTO_INET = 1
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
_ATTR = struct.Struct("=HH")  # struct nlattr
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
OWN_TABLE = b"netjail"  # the nftables backend's `table inet netjail`
JAIL_CHAIN_PREFIXES = (b"nj-o-", b"nj-i-", b"nj-f-")  # one chain per lane and jail


def _chain_names(message: bytes) -> tuple[bytes, bytes]:
    """(table, chain) of one NFT_MSG_NEWCHAIN message (after its nlmsghdr and nfgenmsg)."""
    found = {NFTA_CHAIN_TABLE: b"", NFTA_CHAIN_NAME: b""}
    at = _HEADER.size + _NFGENMSG.size
    while at + _ATTR.size <= len(message):
        size, kind = _ATTR.unpack_from(message, at)
        if size < _ATTR.size:
            break
        if kind & _NLA_TYPE_MASK in found:
            found[kind & _NLA_TYPE_MASK] = message[at + _ATTR.size : at + size].rstrip(b"\0")
        at += (size + 3) & ~3
    return found[NFTA_CHAIN_TABLE], found[NFTA_CHAIN_NAME]


def jails_in(replies: list[bytes]) -> frozenset[str]:
    """The jails whose chains `table inet netjail` holds, from the replies to a chain dump."""
    jails: set[str] = set()
    for reply in replies:
        at = 0
        while at + _HEADER.size <= len(reply):
            size, kind, _flags, _seq, _pid = _HEADER.unpack_from(reply, at)
            if size < _HEADER.size:
                break
            if kind == NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN:
                table, chain = _chain_names(reply[at : at + size])
                if table == OWN_TABLE and chain.startswith(JAIL_CHAIN_PREFIXES):
                    jails.add(chain[len(JAIL_CHAIN_PREFIXES[0]) :].decode(errors="replace"))
            at += (size + 3) & ~3
    return frozenset(jails)


def netjail_jails() -> frozenset[str]:
    """The jails nf_tables holds chains of in `table inet netjail`; empty when it cannot be
    asked. Lets the choice keep jails whose state file was lost with the backend that holds
    them. One NFT_MSG_GETTABLE for that table (~20 us), and only when it exists a chain dump
    of the inet family (every table's chains: ~4 ms with 300 of them)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except OSError:
        return frozenset()
    try:
        sock.settimeout(2.0)
        name = _ATTR.pack(_ATTR.size + len(OWN_TABLE) + 1, NFTA_TABLE_NAME) + OWN_TABLE + b"\0"
        name += bytes(-len(name) % 4)
        kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE
        size = _HEADER.size + _NFGENMSG.size + len(name)
        sock.sendto(
            _HEADER.pack(size, kind, NLM_F_REQUEST, 2, 0) + _NFGENMSG.pack(NFPROTO_INET, 0, 0) + name, (0, 0)
        )
        reply = sock.recv(65536)
        if (
            len(reply) < _HEADER.size
            or _HEADER.unpack_from(reply)[1] != NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE
        ):
            return frozenset()  # no such table (ENOENT), or not asked (EPERM)
        kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETCHAIN
        request = _HEADER.pack(_HEADER.size + _NFGENMSG.size, kind, NLM_F_REQUEST | NLM_F_DUMP, 3, 0)
        sock.sendto(request + _NFGENMSG.pack(NFPROTO_INET, 0, 0), (0, 0))
        replies: list[bytes] = []
        while True:
            reply = sock.recv(65536)
            replies.append(reply)
            if len(reply) < _HEADER.size or _last_type(reply) in (NLMSG_DONE, NLMSG_ERROR):
                break
    except OSError:
        return frozenset()
    finally:
        sock.close()
    return jails_in(replies)


def _last_type(reply: bytes) -> int:
    """The type of the last message in one datagram."""
    at, kind = 0, 0
    while at + _HEADER.size <= len(reply):
        size, kind = _HEADER.unpack_from(reply, at)[:2]
        if size < _HEADER.size:
            break
        at += (size + 3) & ~3
    return kind
