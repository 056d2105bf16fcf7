"""netjail's own kernel ipsets, through pyroute2's netlink client (no `ipset` program needed).

Sets live in the caller's network namespace, like the filter table. Only names fallback_sets
makes are ever created, changed or destroyed here; every other set is left alone.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from netjail.backends.errors import OperationFailed, UnsupportedEnvironment
from netjail.backends.firewall.fallback_sets import ETYPE, SET_PREFIXES, SET_TYPE, Member

_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_LIST_SETNAME = 1 << 1  # IPSET_FLAG_LIST_SETNAME: names only, no members
_ERR_BUSY = 4105  # IPSET_ERR_BUSY: a rule still references the set


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
        """The members of one set (None: no such set)."""
        try:
            msgs = list(self._s.list(name))
        except Exception as exc:
            if getattr(exc, "code", None) == errno.ENOENT:
                return None
            raise self._fail(f"list {name}", exc) from None
        if not msgs:
            return None
        out: set[Member] = set()
        for msg in msgs:
            adt = _attrs(msg, "IPSET_ATTR_ADT")
            if adt is None:
                continue
            for data in adt.get_attrs("IPSET_ATTR_DATA"):
                ip = _addr(data.get_attr("IPSET_ATTR_IP_FROM"))
                ip2_attr = data.get_attr("IPSET_ATTR_IP2")
                ip2 = _addr(ip2_attr) if ip2_attr is not None else ""
                cidr = data.get_attr("IPSET_ATTR_CIDR")
                plen = int(cidr) if cidr is not None else (128 if ":" in ip else 32)
                proto = int(data.get_attr("IPSET_ATTR_PROTO") or 0)
                port = int(data.get_attr("IPSET_ATTR_PORT_FROM") or 0)
                out.add((ip, plen, proto, port, ip2))
        return out

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
        from pyroute2.ipset import PortEntry

        def entry(m: Member) -> tuple[str | PortEntry, ...]:
            addr, plen, proto, port, addr2 = m
            if kind == "flow":
                return (addr, PortEntry(port, proto), addr2)
            return (f"{addr}/{plen}", PortEntry(port, proto))

        try:
            for m in add:  # new members first: a socket moving between entries is never unmatched
                self._s.add(name, entry(m), family=_AF[family], etype=ETYPE[kind], exclusive=False)
            for m in delete:
                try:
                    self._s.delete(name, entry(m), family=_AF[family], etype=ETYPE[kind])
                except Exception as exc:
                    if getattr(exc, "code", None) != 4103:  # IPSET_ERR_EXIST: gone already
                        raise
        except OperationFailed:
            raise
        except Exception as exc:
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
            for port in add:
                self._s.add(name, port, family=socket.AF_UNSPEC, etype="port", exclusive=False)
            for port in delete:
                try:
                    self._s.delete(name, port, family=socket.AF_UNSPEC, etype="port")
                except Exception as exc:
                    if getattr(exc, "code", None) != 4103:
                        raise
        except Exception as exc:
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
