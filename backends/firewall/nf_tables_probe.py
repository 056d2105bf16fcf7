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
