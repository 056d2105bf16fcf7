"""A reader for one netfilter log (NFLOG) group: the kernel's copies of the packets a jail drops.

Speaks the nfnetlink_log ABI (linux/netfilter/nfnetlink_log.h) straight over a netlink socket.
pyroute2 has no NFLOG family, and its generic attribute objects cost ~30 µs a message, which a
rate-limited flood would make the collector's main cost; here one recv returns a batch of packets
(the kernel's queue threshold and flush timeout) and a packet is a few struct reads
(docs/attempts.md, "Cost").
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 1
NLM_F_ACK = 4

# config attributes and commands
NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULA_CFG_NLBUFSIZ = 3
NFULA_CFG_TIMEOUT = 4
NFULA_CFG_QTHRESH = 5
NFULNL_CFG_CMD_BIND = 1
NFULNL_CFG_CMD_UNBIND = 2
NFULNL_COPY_PACKET = 2

# packet attributes
NFULA_PACKET_HDR = 1
NFULA_MARK = 2
NFULA_TIMESTAMP = 3
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10
NFULA_UID = 11
NFULA_GID = 14

NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

# The kernel sends what it queued when QTHRESH copies wait, its buffer of NLBUFSIZ bytes is
# full (the most it accepts: nfnetlink_log.c refuses more than 128 KiB) or TIMEOUT_CS
# hundredths of a second passed: under a flood one read carries ~900 copies of a small packet,
# so the per-read costs (the system call, the wake-up) stay a small part of the collector's.
QTHRESH = 4096
NLBUFSIZ = 128 << 10
TIMEOUT_CS = 50
RECV_BYTES = 256 << 10  # a read never cuts one of the kernel's buffers (a cut one is lost)

_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")
_BE32 = struct.Struct("!I")
_BE64X2 = struct.Struct("!QQ")
_HDR = struct.Struct("!HB")


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """One copy the kernel sent: the rule's prefix names the jail and lane (firewall/nflog_rules)."""

    family: int  # socket.AF_INET / AF_INET6
    hook: int
    prefix: str
    payload: bytes  # the network header onwards, cut at the rule's snap length
    mark: int
    uid: int | None
    gid: int | None
    timestamp: float | None  # None when the kernel did not stamp it (no incoming skb time)


def _attr(kind: int, data: bytes) -> bytes:
    raw = _NLA.pack(4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


class NflogGroup:
    """A bound NFLOG group in the caller's network namespace. Binding fails with EPERM when
    another socket (another collector, a `tcpdump -i nflog:N`) already holds the group."""

    def __init__(
        self,
        group: int,
        *,
        snaplen: int,
        qthresh: int = QTHRESH,
        timeout_cs: int = TIMEOUT_CS,
        rcvbuf: int = 4 << 20,
    ) -> None:
        self.group = group
        self.lost = 0  # copies the kernel dropped because we were slow (ENOBUFS)
        self._seq = 0
        self._buffer = bytearray(RECV_BYTES)
        self._view = memoryview(self._buffer)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (root)
            self.sock.bind((0, 0))
            self._config(socket.AF_UNSPEC, _attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND])))
            self._config(
                socket.AF_UNSPEC,
                _attr(NFULA_CFG_MODE, struct.pack("!IBB", snaplen, NFULNL_COPY_PACKET, 0))
                + _attr(NFULA_CFG_QTHRESH, _BE32.pack(qthresh))
                + _attr(NFULA_CFG_TIMEOUT, _BE32.pack(timeout_cs))
                + _attr(NFULA_CFG_NLBUFSIZ, _BE32.pack(NLBUFSIZ)),
            )
        except BaseException:
            self.sock.close()
            raise

    def _config(self, family: int, attrs: bytes) -> None:
        self._seq += 1
        kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        body = _NFGEN.pack(family, 0, socket.htons(self.group)) + attrs
        self.sock.send(
            _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, self._seq, 0) + body
        )
        while True:
            data = self.sock.recv(65536)
            _length, kind, _flags, seq, _pid = _NLMSG.unpack_from(data)
            if kind == NLMSG_ERROR and seq == self._seq:
                (code,) = struct.unpack_from("=i", data, _NLMSG.size)
                if code:
                    raise OSError(-code, f"NFLOG group {self.group}: {os.strerror(-code)}")
                return

    def fileno(self) -> int:
        return self.sock.fileno()

    def reads(self) -> list[bytes]:
        """Every netlink read already queued, the first one waited for (one select wake-up,
        several kernel flushes). Each is parsed by parse_batch or tally.Tally.feed."""
        out: list[bytes] = []
        flags = 0
        while True:
            try:
                # into one buffer kept for the socket's life, then copied at its length: a fresh
                # RECV_BYTES object a read is an mmap, page faults and an munmap each time
                n = self.sock.recv_into(self._buffer, RECV_BYTES, flags)
                out.append(bytes(self._view[:n]))
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.lost += 1  # the socket overflowed: some copies are gone, the rest follow
            flags = socket.MSG_DONTWAIT

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._config(socket.AF_UNSPEC, _attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_UNBIND])))
        self.sock.close()


def parse_batch(data: bytes) -> list[LoggedPacket]:
    """Every NFULNL_MSG_PACKET in one netlink read (pure: bytes in, packets out)."""
    out: list[LoggedPacket] = []
    packet_kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
    offset, end = 0, len(data)
    while offset + _NLMSG.size <= end:
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > end:
            break
        if kind == packet_kind:
            packet = _parse_packet(data, offset + _NLMSG.size, offset + length)
            if packet is not None:
                out.append(packet)
        offset += (length + 3) & ~3
    return out


def _parse_packet(data: bytes, start: int, end: int) -> LoggedPacket | None:
    return parse_message(data, start, end)[0]


def parse_message(data: bytes, start: int, end: int) -> tuple[LoggedPacket | None, int, int]:
    """A packet message's attributes from `start` (after the netlink header) to `end`, and where
    in `data` its payload and its timestamp attribute begin (-1: none): what tally.py needs to
    know which bytes of the next messages of that shape decide their answer."""
    if start + _NFGEN.size > end:
        return None, -1, -1
    family = data[start]
    hook, prefix, payload, mark, uid, gid, stamp = -1, "", b"", 0, None, None, None
    payload_at = stamp_at = -1
    offset = start + _NFGEN.size
    while offset + _NLA.size <= end:
        alen, kind = _NLA.unpack_from(data, offset)
        if alen < _NLA.size or offset + alen > end:
            break
        kind &= NLA_TYPE_MASK
        value = offset + _NLA.size
        if kind == NFULA_PAYLOAD:
            payload = data[value : offset + alen]
            payload_at = value
        elif kind == NFULA_PREFIX:
            prefix = data[value : offset + alen].split(b"\0", 1)[0].decode("ascii", "replace")
        elif kind == NFULA_PACKET_HDR and alen >= _NLA.size + 3:
            _proto, hook = _HDR.unpack_from(data, value)
        elif kind == NFULA_MARK and alen >= 8:
            (mark,) = _BE32.unpack_from(data, value)
        elif kind == NFULA_UID and alen >= 8:
            (uid,) = _BE32.unpack_from(data, value)
        elif kind == NFULA_GID and alen >= 8:
            (gid,) = _BE32.unpack_from(data, value)
        elif kind == NFULA_TIMESTAMP and alen >= 20:
            sec, usec = _BE64X2.unpack_from(data, value)
            stamp = sec + usec / 1e6
            stamp_at = offset if alen == 20 else -2  # -2: a stamp of a size tally cannot skip
        offset += (alen + 3) & ~3
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None, -1, -1
    return LoggedPacket(family, hook, prefix, payload, mark, uid, gid, stamp), payload_at, stamp_at
