"""Binary layout of xtables-legacy rule entries, and decoding one entry back into a `Match`.

The kernel hands rules out as `struct ipt_entry` / `struct ip6t_entry` followed by their matches
and target (include/uapi/linux/netfilter_ipv4/ip_tables.h, .../netfilter_ipv6/ip6_tables.h).
Only what netjail writes is decoded: address/interface/protocol fields, tcp/udp ports, owner,
cgroup path, mark, socket (as lanes.py writes it), set and comment. A set match holds the
set's kernel index, not its name: it decodes to `match_set="#<index>"` (SET_INDEX_PREFIX),
which the backend names by asking the kernel (the index is what the bytes say; the name behind
it can change when sets come and go, so it is never part of this cache). Anything else (inversions, port
ranges, other matches) decodes to None, which callers treat as "not ours as written": sync
replaces it, read_jail skips it.
"""

from __future__ import annotations

import _socket as socket  # socket.py's C core, same calls: socket.py builds enums at import (~3 ms)
import struct

from netjail.backends.attempts import prefix
from netjail.backends.firewall import log_rule

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:  # imported by the decoder: reading counters needs only the layouts
    from netjail.backends.firewall.base import Match

XT_FUNCTION_MAXNAMELEN = 30
XT_EXTENSION_MAXNAMELEN = 29
ENTRY_MATCH_HEADER = 32  # struct xt_entry_match / xt_entry_target: u16 size, name[29], u8 revision
IFNAMSIZ = 16

# Standard-target verdicts as stored in the blob (negative: -NF_verdict - 1).
VERDICT_DROP = -1  # NF_DROP 0
VERDICT_ACCEPT = -2  # NF_ACCEPT 1
VERDICT_RETURN = -5  # XT_RETURN = -NF_REPEAT - 1

_PROTO_NAMES = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", socket.IPPROTO_ICMPV6: "icmpv6"}


class EntryLayout:
    """Offsets inside one family's entry struct (x86-64 / any LP64 ABI: u64 counters aligned 8).

    A plain class, not a dataclass: two constants that `counters` imports, and creating a
    dataclass costs ~1 ms a command (its generated methods are compiled at import)."""

    __slots__ = (
        "addr_len",
        "counters",
        "family",
        "get_entries",
        "get_info",
        "ifaces",
        "proto",
        "size",
        "sockopt_level",
        "target_offset",
    )

    def __init__(
        self,
        *,
        family: str,
        addr_len: int,
        size: int,  # sizeof(struct ipt_entry), where the first match starts
        target_offset: int,  # u16 target_offset, then u16 next_offset
        counters: int,  # u64 pcnt, u64 bcnt
        proto: int,  # u16 proto, then the flags byte(s)
        ifaces: int,  # iniface, outiface, iniface_mask, outiface_mask (IFNAMSIZ each)
        sockopt_level: int,
        get_info: int,  # IPT_SO_GET_INFO / IP6T_SO_GET_INFO
        get_entries: int,
    ) -> None:
        self.family, self.addr_len, self.size = family, addr_len, size
        self.target_offset, self.counters, self.proto, self.ifaces = target_offset, counters, proto, ifaces
        self.sockopt_level, self.get_info, self.get_entries = sockopt_level, get_info, get_entries

    def __repr__(self) -> str:
        return f"EntryLayout({self.family})"


# ipt_ip: src dst smsk dmsk (4 each), 4 x IFNAMSIZ, u16 proto, u8 flags, u8 invflags = 84
IPV4 = EntryLayout(
    family="inet",
    addr_len=4,
    size=112,
    target_offset=88,
    counters=96,
    proto=80,
    ifaces=16,
    sockopt_level=socket.IPPROTO_IP,
    get_info=64,
    get_entries=65,
)
# ip6t_ip6: src dst smsk dmsk (16 each), 4 x IFNAMSIZ, u16 proto, u8 tos, u8 flags, u8 invflags,
# padded to 136
IPV6 = EntryLayout(
    family="inet6",
    addr_len=16,
    size=168,
    target_offset=140,
    counters=152,
    proto=128,
    ifaces=64,
    sockopt_level=socket.IPPROTO_IPV6,
    get_info=64,
    get_entries=65,
)
LAYOUTS = {"inet": IPV4, "inet6": IPV6}

IPT_F_FRAG = 0x01  # IPv4 flags byte
IP6T_F_PROTO = 0x01  # IPv6: proto field is meaningful
IP6T_F_TOS = 0x02
XT_OWNER_UID = 0x01
XT_OWNER_GID = 0x02
XT_SOCKET_NOWILDCARD = 0x02
XT_SOCKET_RESTORESKMARK = 0x04
SET_INDEX_PREFIX = "#"
IPSET_INV_MATCH = 0x01  # xt_set_info.flags bit 0; bit i (1..dim) says dimension i is "src"
XT_SET_V4_DATA = 48  # xt_set_info_match_v4: xt_set_info (4), 2 x ip_set_counter_match (16), u32


class DecodedRule:
    """One decoded entry (a plain class: see EntryLayout)."""

    __slots__ = ("comment", "log_target", "match")

    def __init__(self, match: Match, comment: str | None = None, log_target: str | None = None) -> None:
        # log_target: log_rule.target() of an NFLOG rule netjail writes
        self.match, self.comment, self.log_target = match, comment, log_target

    def _key(self) -> tuple[Match, str | None, str | None]:
        return (self.match, self.comment, self.log_target)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecodedRule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"DecodedRule({self.match!r}, {self.comment!r}, {self.log_target!r})"


class _NotOurs(Exception):
    """The entry holds something netjail never writes."""


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _prefix(addr: bytes, mask: bytes, family: int) -> str | None:
    """CIDR text, None for "any"."""
    bits = int.from_bytes(mask, "big")
    if bits == 0:
        return None
    width = len(mask) * 8
    plen = bin(bits).count("1")
    if bits != ((1 << plen) - 1) << (width - plen):
        raise _NotOurs("netmask is not a prefix")
    return f"{socket.inet_ntop(family, addr)}/{plen}"


def _iface(name: bytes, mask: bytes) -> str | None:
    text = _cstr(name)
    if not text:
        return None
    # "eth+" (any eth*): the mask stops short of the name's end. iptables keeps the "+" in the
    # name, python-iptables strips it.
    if not text.endswith("+") and len(text) < IFNAMSIZ and mask[len(text)] == 0:
        return text + "+"
    return text


def _port(lo: int, hi: int) -> int | None:
    if (lo, hi) == (0, 0xFFFF):
        return None
    if lo != hi:
        raise _NotOurs("port range")
    return lo


def _one_id(what: int, flag: int, lo: int, hi: int) -> int | None:
    if not what & flag:
        return None
    if lo != hi:
        raise _NotOurs("id range")
    return lo


def decode_entry(layout: EntryLayout, entry: bytes) -> DecodedRule | None:
    """The Match (and comment) of one rule entry; None when it holds anything netjail never writes."""
    try:
        return _decode(layout, entry)
    except (_NotOurs, struct.error, IndexError, ValueError):
        return None


_CACHE_MAX = 50_000
_cache: dict[tuple[str, bytes], DecodedRule | None] = {}


def decode_entry_cached(layout: EntryLayout, entry: bytes) -> DecodedRule | None:
    """decode_entry, remembered by the entry's bytes without its counters: every sync reads every
    rule of netjail's chains back, and they rarely change between syncs."""
    at = layout.counters
    key = (layout.family, entry[:at] + entry[at + 16 :])
    try:
        return _cache[key]
    except KeyError:
        pass
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    decoded = _cache[key] = decode_entry(layout, entry)
    return decoded


def _decode(layout: EntryLayout, entry: bytes) -> DecodedRule:
    from netjail.backends.firewall.base import Match  # a dict lookup once loaded

    af = socket.AF_INET6 if layout.family == "inet6" else socket.AF_INET
    n = layout.addr_len
    src = _prefix(entry[0:n], entry[2 * n : 3 * n], af)
    dst = _prefix(entry[n : 2 * n], entry[3 * n : 4 * n], af)
    i = layout.ifaces
    in_iface = _iface(entry[i : i + IFNAMSIZ], entry[i + 2 * IFNAMSIZ : i + 3 * IFNAMSIZ])
    out_iface = _iface(entry[i + IFNAMSIZ : i + 2 * IFNAMSIZ], entry[i + 3 * IFNAMSIZ : i + 4 * IFNAMSIZ])
    if layout.family == "inet6":
        proto_num, _tos, flags, invflags = struct.unpack_from("=HBBB", entry, layout.proto)
        if flags & ~IP6T_F_PROTO or invflags:
            raise _NotOurs("ip6 flags")
        if not flags & IP6T_F_PROTO:
            proto_num = 0
    else:
        proto_num, flags, invflags = struct.unpack_from("=HBB", entry, layout.proto)
        if flags or invflags:
            raise _NotOurs("ip flags")
    if proto_num and proto_num not in _PROTO_NAMES:
        raise _NotOurs("protocol")
    proto = _PROTO_NAMES.get(proto_num)

    sport = dport = uid = gid = icmp6_type = mark = mark_mask = None
    cgroup = comment = match_set = flags = None
    socket_mark = log_limit = False
    (target_offset,) = struct.unpack_from("=H", entry, layout.target_offset)
    off = layout.size
    while off < target_offset:
        (msize,) = struct.unpack_from("=H", entry, off)
        if msize < ENTRY_MATCH_HEADER:
            raise _NotOurs("match size")
        name = _cstr(entry[off + 2 : off + 2 + XT_EXTENSION_MAXNAMELEN])
        revision = entry[off + 31]
        data = off + ENTRY_MATCH_HEADER
        if name in ("tcp", "udp") and name == proto:
            slo, shi, dlo, dhi = struct.unpack_from("=HHHH", entry, data)
            # tcp: option, flg_mask, flg_cmp, invflags; udp: invflags
            if any(entry[data + 8 : data + (12 if name == "tcp" else 9)]):
                raise _NotOurs("tcp/udp options")
            sport, dport = _port(slo, shi), _port(dlo, dhi)
        elif name == "icmp6" and proto == "icmpv6":
            # ip6t_icmp: type, code range [min, max], invflags
            if entry[data + 1 : data + 4] != b"\x00\xff\x00":
                raise _NotOurs("icmp6 options")
            icmp6_type = entry[data]
        elif name == "owner" and revision == 1:
            uid_min, uid_max, gid_min, gid_max, what, invert = struct.unpack_from("=IIIIBB", entry, data)
            if invert or what & ~(XT_OWNER_UID | XT_OWNER_GID):
                raise _NotOurs("owner options")
            uid = _one_id(what, XT_OWNER_UID, uid_min, uid_max)
            gid = _one_id(what, XT_OWNER_GID, gid_min, gid_max)
        elif name == "cgroup" and revision in (1, 2):
            if entry[data : data + 4] != b"\1\0\0\0":  # has_path only, nothing inverted
                raise _NotOurs("cgroup options")
            path_max = 512 if revision == 2 else 4096
            cgroup = _cstr(entry[data + 4 : data + 4 + path_max])
        elif name == "mark" and revision == 1:
            mark, mark_mask, invert = struct.unpack_from("=IIB", entry, data)  # xt_mark_mtinfo1
            if invert:
                raise _NotOurs("inverted mark")
        elif name == "socket" and revision == 3:
            if entry[data] != XT_SOCKET_NOWILDCARD | XT_SOCKET_RESTORESKMARK:  # xt_socket_mtinfo3
                raise _NotOurs("socket options")
            socket_mark = True
        elif name == "set" and revision == 4:
            index, dim, set_flags = struct.unpack_from("=HBB", entry, data)
            if set_flags & IPSET_INV_MATCH or not 0 < dim <= 3 or set_flags >> (dim + 1):
                raise _NotOurs("set options")
            if msize != ENTRY_MATCH_HEADER + XT_SET_V4_DATA or any(entry[data + 4 : data + XT_SET_V4_DATA]):
                raise _NotOurs("set counters or flags")  # counter tests, --return-nomatch ...
            match_set = f"{SET_INDEX_PREFIX}{index}"
            flags = ",".join("src" if set_flags >> i & 1 else "dst" for i in range(1, dim + 1))
        elif name == "comment":
            comment = _cstr(entry[data : data + 256])
        elif name == "limit" and revision == 0:
            # xt_rateinfo: avg, burst; the kernel's own fields after them read back as zeros
            avg, burst = struct.unpack_from("=II", entry, data)
            if (avg, burst) != (log_rule.limit_avg(), prefix.BURST):
                raise _NotOurs("limit")
            log_limit = True
        else:
            raise _NotOurs(f"match {name}")
        off += msize
    log_target = None
    if _cstr(entry[target_offset + 2 : target_offset + 2 + XT_EXTENSION_MAXNAMELEN]) == "NFLOG":
        # xt_nflog_info: len, group, threshold, flags, pad, prefix[64]
        length, group, _threshold, nflags = struct.unpack_from("=IHHH", entry, target_offset + 32)
        text = _cstr(entry[target_offset + 32 + 12 : target_offset + 32 + 12 + 64])
        if nflags == log_rule.XT_NFLOG_F_COPY_LEN and length == prefix.SNAPLEN:
            log_target = f"{log_rule.LOG_TARGET}{group}:{text}"
    match = Match(
        family=layout.family,
        proto=proto,
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        cgroup=cgroup,
        uid_owner=uid,
        gid_owner=gid,
        in_iface=in_iface,
        out_iface=out_iface,
        icmp6_type=icmp6_type,
        mark=mark,
        mark_mask=mark_mask,
        socket_mark=socket_mark,
        match_set=match_set,
        set_flags=flags,
        log_limit=log_limit,
    )
    return DecodedRule(match, comment, log_target)
