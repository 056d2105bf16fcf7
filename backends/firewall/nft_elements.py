"""The elements of netjail's cgroup maps, read by id in one netlink dump (NFT_MSG_GETSETELEM).

libnftables prints a `cgroupsv2` element as its path, which it finds by walking the whole cgroup
tree below /sys/fs/cgroup for every element: a map of 500 member cgroups took 24-29 s to list here
(docs/firewall-nftables.md). The kernel holds the cgroup's id (its inode number in cgroup2), so
the map is dumped here as ids, and the ids are named with one walk of the tree (cgroup_paths):
milliseconds, whatever the number of elements.
"""

from __future__ import annotations

import _socket as socket  # socket.py's C core: socket.py builds enums at import (~3 ms)
import errno
import os
import struct

from netjail.backends.errors import InsufficientPrivilege, OperationFailed

NETLINK_NETFILTER = 12
NFPROTO_INET = 1
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM = 12, 13
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA = 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
NFT_JUMP = -3
_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")
_ID = struct.Struct("=Q")  # a cgroupsv2 key: the id in host byte order


def _attr(kind: int, payload: bytes) -> bytes:
    data = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return data + bytes(-len(data) % 4)


def _walk(data: bytes, off: int, end: int) -> list[tuple[int, int, int]]:
    """(type, start, end) of each attribute between off and end."""
    out = []
    while off + 4 <= end:
        length, kind = _ATTR.unpack_from(data, off)
        if length < 4:
            break
        out.append((kind & 0x3FFF, off + 4, off + length))
        off += (length + 3) & ~3
    return out


def _element(data: bytes, start: int, end: int) -> tuple[bytes, str | None] | None:
    key: bytes | None = None
    chain: str | None = None
    for kind, a, b in _walk(data, start, end):
        if kind == NFTA_SET_ELEM_KEY:
            for k2, a2, b2 in _walk(data, a, b):
                if k2 == NFTA_DATA_VALUE:
                    key = data[a2:b2]
        elif kind == NFTA_SET_ELEM_DATA:
            for k2, a2, b2 in _walk(data, a, b):
                if k2 == NFTA_DATA_VERDICT:
                    code = None
                    for k3, a3, b3 in _walk(data, a2, b2):
                        if k3 == NFTA_VERDICT_CODE:
                            (code,) = struct.unpack_from("!i", data, a3)
                        elif k3 == NFTA_VERDICT_CHAIN:
                            chain = data[a3:b3].rstrip(b"\0").decode(errors="replace")
                    if code != NFT_JUMP:
                        chain = None
    return None if key is None else (key, chain)


def dump_elements(set_name: str, table: str = "netjail") -> list[tuple[bytes, str | None]]:
    """(key bytes, chain jumped to or None) of every element of `inet <table>`'s `set_name`."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except PermissionError:
        raise InsufficientPrivilege("reading netjail's nftables maps needs root (CAP_NET_ADMIN)") from None
    except OSError as exc:
        raise OperationFailed(f"cannot open a netfilter netlink socket: {exc.strerror}") from None
    found: list[tuple[bytes, str | None]] = []
    try:
        body = _NFGEN.pack(NFPROTO_INET, 0, 0)
        body += _attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
        body += _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0")
        msg_type = (10 << 8) | NFT_MSG_GETSETELEM
        sock.sendto(
            _NLMSG.pack(_NLMSG.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body, (0, 0)
        )
        while True:
            data = sock.recv(1 << 17)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
                if length < _NLMSG.size or kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + _NLMSG.size)
                    if err in (0, -errno.ENOENT):
                        return found
                    if err in (-errno.EPERM, -errno.EACCES):
                        raise InsufficientPrivilege(
                            "reading netjail's nftables maps needs root (CAP_NET_ADMIN)"
                        )
                    raise OperationFailed(f"nftables element dump failed: {errno.errorcode.get(-err, err)}")
                if kind & 0xFF == NFT_MSG_NEWSETELEM:
                    for k, a, b in _walk(data, off + _NLMSG.size + _NFGEN.size, off + length):
                        if k != NFTA_SET_ELEM_LIST_ELEMENTS:
                            continue
                        for k2, a2, b2 in _walk(data, a, b):
                            if k2 == NFTA_LIST_ELEM:
                                el = _element(data, a2, b2)
                                if el is not None:
                                    found.append(el)
                off += (length + 3) & ~3
    finally:
        sock.close()


def cgroup_ids(set_name: str) -> dict[int, str | None]:
    """cgroup id -> the chain its element jumps to, for one of netjail's cgroup maps."""
    return {_ID.unpack(k)[0]: chain for k, chain in dump_elements(set_name) if len(k) == _ID.size}


def cgroup_paths(root: str, wanted: set[int]) -> dict[int, str]:
    """id -> path relative to `root` (the cgroup2 mount) of the cgroups among `wanted`, by one
    walk that stops once all are found and skips trees other users may change. A cgroup2
    directory's inode number is its id."""
    out: dict[int, str] = {}
    if not wanted:
        return out
    stack = [""]
    while stack and len(out) < len(wanted):
        rel = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                # a tree a user may change holds no cgroup of netjail's (jails/cgroups.place), and
                # a user with a delegated subtree could fill it: 100,000 cgroups made in 6 s kept
                # the walk (under netjail's lock) 1.6-2.9 s per change that named a deleted id
                if st.st_uid != 0 or st.st_mode & 0o022:
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                if entry.inode() in wanted:
                    out[entry.inode()] = child
                stack.append(child)
    return out
