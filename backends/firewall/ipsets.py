"""netjail's own kernel ipsets, through pyroute2's netlink client (no `ipset` program needed).

Sets live in the caller's network namespace, like the filter table. Only names fallback_sets
makes are ever created, changed or destroyed here; every other set is left alone.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from netjail.backends.errors import OperationFailed, UnsupportedEnvironment
from netjail.backends.firewall.fallback_sets import SET_PREFIXES, SET_TYPE, Member

_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_LIST_SETNAME = 1 << 1  # IPSET_FLAG_LIST_SETNAME: names only, no members
_ERR_BUSY = 4105  # IPSET_ERR_BUSY: a rule still references the set


# Members go to the kernel in batches (one IPSET_ATTR_ADT holding many IPSET_ATTR_DATA, as
# `ipset restore` sends them): one netlink message per set per 500 members, where pyroute2's
# add() takes a round trip and ~0.2 ms of Python per member (2,000 sockets: 0.45 s).
_NFNL_SUBSYS_IPSET = 6
_CMD_LIST, _CMD_ADD, _CMD_DEL = 7, 9, 10
_NESTED, _NETORDER = 0x8000, 0x4000
_A_PROTOCOL, _A_SETNAME, _A_DATA, _A_ADT, _A_LINENO = 1, 2, 7, 8, 9
_D_IP, _D_CIDR, _D_PORT, _D_PROTO, _D_IP2 = 1, 3, 4, 7, 20
_PROTOCOL = 7
_BATCH = 500
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 1, 4, 0x300, 2, 3
_NETLINK_NETFILTER = 12


def _nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _ip_nla(kind: int, addr: str) -> bytes:
    v6 = ":" in addr
    raw = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, addr)
    return _nla(kind | _NESTED, _nla((2 if v6 else 1) | _NETORDER, raw))


def _member_nla(kind: str, m: Member) -> bytes:
    addr, plen, proto, port, addr2 = m
    body = _nla(_D_PORT | _NETORDER, struct.pack("!H", port))
    if kind != "gate":
        body = _ip_nla(_D_IP, addr) + body + _nla(_D_PROTO, bytes([proto]))
        body += _ip_nla(_D_IP2, addr2) if kind == "flow" else _nla(_D_CIDR, bytes([plen]))
    return _nla(_A_DATA | _NESTED, body)


def _adt(cmd: int, name: str, family: int, kind: str, members: Iterable[Member]) -> None:
    """Add or delete members, many per message. Without NLM_F_EXCL the kernel ignores members
    already there (add) or already gone (del)."""
    todo = [_member_nla(kind, m) for m in members]
    if not todo:
        return
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as nl:
        nl.bind((0, 0))
        for seq, start in enumerate(range(0, len(todo), _BATCH), 1):
            attrs = (
                _nla(_A_PROTOCOL, bytes([_PROTOCOL]))
                + _nla(_A_SETNAME, name.encode() + b"\0")
                + _nla(_A_ADT | _NESTED, b"".join(todo[start : start + _BATCH]))
                + _nla(_A_LINENO, struct.pack("=I", 0))  # required with IPSET_ATTR_ADT
            )
            body = struct.pack("=BBH", family, 0, 0) + attrs
            flags = _NLM_F_REQUEST | _NLM_F_ACK
            nl.send(
                struct.pack("=IHHII", 16 + len(body), _NFNL_SUBSYS_IPSET << 8 | cmd, flags, seq, 0) + body
            )
            while True:
                reply = nl.recv(65536)
                _, rtype, _, rseq, _ = struct.unpack_from("=IHHII", reply)
                if rtype == _NLMSG_ERROR and rseq == seq:
                    (code,) = struct.unpack_from("=i", reply, 16)
                    if code:
                        raise OSError(-code, os.strerror(-code) if -code < 4096 else f"ipset error {-code}")
                    break


def _nlas(data: bytes) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, off)
        if size < 4:
            return
        yield kind & 0x3FFF, data[off + 4 : off + size]
        off += (size + 3) & ~3


def _ip_of(nested: bytes) -> str:
    for kind, raw in _nlas(nested):
        if kind in (1, 2):
            return socket.inet_ntop(socket.AF_INET if kind == 1 else socket.AF_INET6, raw)
    return ""


def _dump_members(name: str) -> set[Member] | None:
    """The members of one set, read with one IPSET_CMD_LIST dump (None: no such set)."""
    attrs = _nla(_A_PROTOCOL, bytes([_PROTOCOL])) + _nla(_A_SETNAME, name.encode() + b"\0")
    body = struct.pack("=BBH", socket.AF_INET, 0, 0) + attrs
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    out: set[Member] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as nl:
        nl.bind((0, 0))
        nl.send(
            struct.pack("=IHHII", 16 + len(body), _NFNL_SUBSYS_IPSET << 8 | _CMD_LIST, flags, 1, 0) + body
        )
        while True:
            buf = nl.recv(1 << 20)
            off = 0
            while off + 16 <= len(buf):
                size, rtype, _, _, _ = struct.unpack_from("=IHHII", buf, off)
                if size < 16:
                    return out
                msg = buf[off : off + size]
                off += (size + 3) & ~3
                if rtype == _NLMSG_DONE:
                    return out
                if rtype == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", msg, 16)
                    if -code == errno.ENOENT:
                        return None
                    if code:
                        raise OSError(-code, os.strerror(-code) if -code < 4096 else f"ipset error {-code}")
                    return out
                for kind, adt in _nlas(msg[20:]):
                    if kind != _A_ADT:
                        continue
                    for dkind, data in _nlas(adt):
                        if dkind != _A_DATA:
                            continue
                        ip = ip2 = ""
                        plen = proto = port = 0
                        for akind, raw in _nlas(data):
                            if akind == _D_IP:
                                ip = _ip_of(raw)
                            elif akind == _D_IP2:
                                ip2 = _ip_of(raw)
                            elif akind == _D_CIDR:
                                plen = raw[0]
                            elif akind == _D_PORT:
                                (port,) = struct.unpack("!H", raw[:2])
                            elif akind == _D_PROTO:
                                proto = raw[0]
                        out.add((ip, plen or (128 if ":" in ip else 32 if ip else 0), proto, port, ip2))


def _attrs(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _addr(nested: Any) -> str:
    if nested is None:  # a bitmap:port member has no address
        return ""
    for key in ("IPSET_ATTR_IPADDR_IPV4", "IPSET_ATTR_IPADDR_IPV6"):
        value = nested.get_attr(key)
        if value is not None:
            return str(value)
    return ""


class Ipsets:
    """One netlink socket for a batch of set operations (`with Ipsets() as sets: ...`)."""

    def __init__(self) -> None:
        try:
            from pyroute2.ipset import IPSet
        except ImportError as exc:
            raise UnsupportedEnvironment(f"pyroute2 is unavailable ({exc}): ipsets need it") from None
        try:
            self._s: Any = IPSet()
        except OSError as exc:
            raise UnsupportedEnvironment(f"cannot open the ipset netlink socket: {exc}") from None

    def __enter__(self) -> Ipsets:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._s.close()

    def _fail(self, what: str, exc: Exception) -> OperationFailed:
        return OperationFailed(f"ipset {what}: {exc}")

    def names(self) -> set[str]:
        """netjail's sets in this network namespace."""
        try:
            msgs = list(self._s.list(flags=_LIST_SETNAME))
        except Exception as exc:  # NetlinkError: no ip_set in this kernel
            if getattr(exc, "code", None) in (errno.EPROTONOSUPPORT, errno.ENOENT):
                return set()
            raise self._fail("list", exc) from None
        found = {str(_attrs(m, "IPSET_ATTR_SETNAME")) for m in msgs}
        return {n for n in found if n.startswith(SET_PREFIXES)}

    def members(self, name: str, kind: str) -> set[Member] | None:
        """The members of one set (None: no such set); read without pyroute2's decoder, which
        takes ~0.15 ms per member."""
        try:
            return _dump_members(name)
        except OSError as exc:
            raise self._fail(f"list {name}", exc) from None

    def create(self, name: str, family: str, kind: str) -> None:
        try:
            self._s.create(name, stype=SET_TYPE[kind], family=_AF[family])
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code == errno.EEXIST:
                return
            if code in (errno.EPROTONOSUPPORT, 4098):  # no ip_set / IPSET_ERR_FIND_TYPE
                raise UnsupportedEnvironment(
                    f"kernel ipset type {SET_TYPE[kind]} unavailable ({exc}): sockets that could "
                    "not be marked cannot be matched (CONFIG_IP_SET_HASH_*)"
                ) from None
            raise self._fail(f"create {name}", exc) from None

    def change(
        self, name: str, family: str, kind: str, add: Iterable[Member], delete: Iterable[Member]
    ) -> None:
        try:  # new members first: a socket moving between entries is never unmatched
            _adt(_CMD_ADD, name, _AF[family], kind, add)
            _adt(_CMD_DEL, name, _AF[family], kind, delete)
        except OSError as exc:
            raise self._fail(f"update {name}", exc) from None

    def gate_ports(self, name: str) -> set[int] | None:
        found = self.members(name, "gate")
        return None if found is None else {m[3] for m in found}

    def create_gate(self, name: str) -> None:
        """A bitmap:port of any family (NFPROTO_UNSPEC): one set serves iptables and ip6tables."""
        try:
            self._s.create(name, stype="bitmap:port", family=socket.AF_UNSPEC, bitmap_ports_range=(0, 65535))
        except Exception as exc:
            if getattr(exc, "code", None) != errno.EEXIST:
                raise self._fail(f"create {name}", exc) from None

    def change_gate(self, name: str, add: Iterable[int], delete: Iterable[int]) -> None:
        try:
            _adt(_CMD_ADD, name, socket.AF_UNSPEC, "gate", (("", 0, 0, p, "") for p in add))
            _adt(_CMD_DEL, name, socket.AF_UNSPEC, "gate", (("", 0, 0, p, "") for p in delete))
        except OSError as exc:
            raise self._fail(f"update {name}", exc) from None

    def destroy(self, name: str) -> None:
        """Destroy one of netjail's sets (absent: nothing to do)."""
        if not name.startswith(SET_PREFIXES):
            raise OperationFailed(f"refusing to destroy ipset {name!r}: not one of netjail's")
        try:
            self._s.destroy(name)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code == errno.ENOENT:
                return
            if code == _ERR_BUSY:
                raise OperationFailed(
                    f"ipset {name} is still referenced by a rule (another program's?): left in place"
                ) from None
            raise self._fail(f"destroy {name}", exc) from None

    def index_of(self, name: str) -> int | None:
        try:
            reply = self._s.get_set_byname(name)
        except Exception as exc:
            if getattr(exc, "code", None) == errno.ENOENT:
                return None
            raise self._fail(f"look up {name}", exc) from None
        index = reply[0].get_attr("IPSET_ATTR_INDEX") if reply else None
        return None if index is None else int(index)

    def name_of(self, index: int) -> str | None:
        try:
            reply = self._s.get_set_byindex(index)
        except Exception as exc:
            if getattr(exc, "code", None) == errno.ENOENT:
                return None
            raise self._fail(f"look up set #{index}", exc) from None
        name = reply[0].get_attr("IPSET_ATTR_SETNAME") if reply else None
        return None if name is None else str(name)
