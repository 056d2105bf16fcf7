"""Pure parsers for the /proc files the inventory reads. No I/O here: text in, values out.

Kept apart from the reading so they can be tested on captured text, and kept lean because the
socket tables are parsed once per network namespace on every refresh (thousands of lines).
"""

from __future__ import annotations

import _socket as socket  # socket.py's C core, same calls: socket.py builds enums at import (~3 ms)
import sys
from collections.abc import Iterator, Mapping, MutableMapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from netjail.backends.model import Socket

# include/net/tcp_states.h. NEW_SYN_RECV and BOUND_INACTIVE are newer kernel states.
TCP_STATES: dict[int, str] = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW_SYN_RECV",
    0x0D: "BOUND_INACTIVE",
}
# A UDP socket reports TCP_ESTABLISHED once connect()ed and TCP_CLOSE otherwise (`ss`: UNCONN).
UDP_STATES: dict[int, str] = {0x01: "ESTABLISHED", 0x07: "UNCONN"}

PROCESS_STATES: dict[str, str] = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "Z": "zombie",
    "X": "dead",
    "x": "dead",
    "I": "idle",
    "P": "parked",
    "K": "wakekill",
    "W": "waking",
}

PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread
_LITTLE_ENDIAN = sys.byteorder == "little"
# The kernel prints each 32-bit word of an address with %08X in host byte order.
_TABLE_KINDS = {
    "tcp": ("inet", "tcp"),
    "tcp6": ("inet6", "tcp"),
    "udp": ("inet", "udp"),
    "udp6": ("inet6", "udp"),
}


LineKey = tuple[str, str, str, str]  # local, remote, state, inode columns of a table line


class ProcStat:
    """The fields of /proc/PID/stat netjail uses (the one record of them: identity, inventory).
    A plain class: a NamedTuple needs typing, whose import costs every command ~2 ms."""

    __slots__ = ("flags", "name", "pid", "ppid", "start_time", "state")

    def __init__(self, pid: int, name: str, state: str, ppid: int, flags: int, start_time: int) -> None:
        self.pid = pid
        self.name = name  # comm: at most 15 bytes, whatever the process chose
        self.state = state  # one letter, as in /proc/PID/stat
        self.ppid = ppid
        self.flags = flags
        self.start_time = start_time  # clock ticks since boot

    def _key(self) -> tuple[int, str, str, int, int, int]:
        return (self.pid, self.name, self.state, self.ppid, self.flags, self.start_time)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcStat) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"ProcStat{self._key()!r}"

    @property
    def kernel_thread(self) -> bool:
        # PF_KTHREAD alone: kthreadd carries it too, and in a PID namespace PID 2 and its
        # children are ordinary processes (the namespace holds no kernel thread)
        return bool(self.flags & PF_KTHREAD)


def table_kind(filename: str) -> tuple[str, str]:
    """'tcp6' -> ('inet6', 'tcp'); the four /proc/net files the inventory reads."""
    return _TABLE_KINDS[filename]


def decode_addr(hexaddr: str) -> str:
    """Address as printed in /proc/net/{tcp,udp}[6] -> text ('0100007F' -> '127.0.0.1').

    v4-mapped IPv6 addresses come out as '::ffff:127.0.0.1', like `ss` prints them.
    """
    raw = bytes.fromhex(hexaddr)
    if _LITTLE_ENDIAN:
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    raise ValueError(f"bad address {hexaddr!r}")


def iter_net_table(
    text: str,
    family: str,
    proto: str,
    *,
    owned_only: bool = False,
    cache: Mapping[LineKey, Socket] | None = None,
    keep: MutableMapping[LineKey, Socket] | None = None,
    addrs: MutableMapping[str, str] | None = None,
) -> Iterator[Socket]:
    """Sockets of one /proc/net/{tcp,tcp6,udp,udp6} text (header line included).

    owned_only drops inode-0 entries (TIME_WAIT and request sockets: no process holds them).
    A refresh that finds a line whose stable columns it saw last time reuses that Socket from
    cache instead of decoding it again; every yielded socket is stored into keep (the next
    refresh's cache, so it holds only live sockets). addrs memoises address decoding.
    """
    from netjail.backends.model import Socket  # not for identity's users (`list`): model.py

    states = TCP_STATES if proto == "tcp" else UDP_STATES
    if addrs is None:
        addrs = {}
    lines = text.split("\n")
    for line in lines[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        inode_s = f[9]
        if owned_only and inode_s == "0":
            continue
        key = (f[1], f[2], f[3], inode_s)
        if cache is not None:
            sock = cache.get(key)
            if sock is not None:
                if keep is not None:
                    keep[key] = sock
                yield sock
                continue
        lhex, _, lport = f[1].partition(":")
        rhex, _, rport = f[2].partition(":")
        laddr = addrs.get(lhex)
        if laddr is None:
            laddr = addrs[lhex] = decode_addr(lhex)
        raddr = addrs.get(rhex)
        if raddr is None:
            raddr = addrs[rhex] = decode_addr(rhex)
        st = int(f[3], 16)
        sock = Socket(
            family=family,
            proto=proto,
            local_addr=laddr,
            local_port=int(lport, 16),
            remote_addr=raddr,
            remote_port=int(rport, 16),
            state=states.get(st) or f"UNKNOWN_{st:02X}",
            inode=int(inode_s),
        )
        if keep is not None:
            keep[key] = sock
        yield sock


def parse_net_table(text: str, family: str, proto: str, *, owned_only: bool = False) -> list[Socket]:
    return list(iter_net_table(text, family, proto, owned_only=owned_only))


def parse_stat(text: str) -> ProcStat:
    """/proc/PID/stat. comm may hold spaces and parentheses, so split at the last ')'."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    return ProcStat(
        pid=int(text[: open_paren - 1]),
        name=text[open_paren + 1 : close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        flags=int(rest[6]),
        start_time=int(rest[19]),
    )


def parse_status_ids(text: str) -> tuple[int | None, int | None]:
    """Effective uid and gid from /proc/PID/status (`Uid: real effective saved fs`)."""
    uid = gid = None
    for line in text.split("\n"):
        if line.startswith("Uid:"):
            uid = int(line.split()[2])
        elif line.startswith("Gid:"):
            gid = int(line.split()[2])
            break  # Gid follows Uid
    return uid, gid


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """NUL-separated argv; a process that rewrote its title may have no NULs at all."""
    if not data:
        return ()
    if data.endswith(b"\0"):
        data = data[:-1]
    # surrogateescape: argv that is not UTF-8 is kept byte for byte (a relaunch runs it unchanged)
    return tuple(arg.decode("utf-8", "surrogateescape") for arg in data.split(b"\0"))


def parse_cgroup_v2(text: str) -> str:
    """The unified-hierarchy path: the `0::` line of /proc/PID/cgroup ('' when absent)."""
    for line in text.split("\n"):
        if line.startswith("0::"):
            return line[3:]
    return ""


def socket_inode(link: str) -> int | None:
    """An fd's readlink target -> socket inode ('socket:[123]' -> 123), None for other files."""
    if link.startswith("socket:["):
        return int(link[8:-1])
    return None


def ns_inode(link: str) -> int:
    """'net:[4026531840]' (readlink of /proc/PID/ns/net) -> 4026531840."""
    return int(link[link.index("[") + 1 : -1])


def display_name(comm: str, cmdline: tuple[str, ...]) -> str:
    """comm is cut at 15 bytes; complete it from argv[0] when that is what was cut. Bytes, not
    characters: a name of CJK characters is cut after 5 of them, an emoji perhaps mid-way (its
    first bytes then arrive as surrogate escapes)."""
    if len(comm) >= 15 and cmdline:  # the common, ASCII case
        base = cmdline[0].rsplit("/", 1)[-1].split(" ", 1)[0]
        if base.startswith(comm):
            return base
    elif cmdline and not comm.isascii():
        raw = comm.encode("utf-8", "surrogateescape")
        if len(raw) >= 15:
            base = cmdline[0].rsplit("/", 1)[-1].split(" ", 1)[0]
            if base.encode("utf-8", "surrogateescape").startswith(raw):
                return base
    return comm


def process_state(letter: str) -> str:
    return PROCESS_STATES.get(letter, letter)


_SOCKSTAT_TABLES = {"TCP:": "tcp", "UDP:": "udp", "TCP6:": "tcp6", "UDP6:": "udp6"}


def parse_sockstat_inuse(text: str) -> dict[str, int]:
    """/proc/net/sockstat(6) -> sockets per table ({'tcp': 3, 'udp6': 0 ...}).

    `inuse` counts exactly the hashed sockets /proc/net/{tcp,udp}[6] list, so a table at 0 need
    not be read (an empty /proc/net/tcp still walks the whole TCP hash: ~3 ms here).
    """
    counts: dict[str, int] = {}
    for line in text.split("\n"):
        f = line.split()
        if len(f) >= 3 and f[0] in _SOCKSTAT_TABLES and f[1] == "inuse":
            counts[_SOCKSTAT_TABLES[f[0]]] = int(f[2])
    return counts
