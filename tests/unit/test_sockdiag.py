"""sock_diag dump parsing, on netlink buffers captured from this kernel (Linux 6.18).

Captured in a private netns holding: a TCP listener on 127.0.0.1:8080 with an established pair,
an IPv6 listener on [::]:9090 reached over IPv4 (v4-mapped), a bound UDP socket on 0.0.0.0:5353
and a connected UDP socket [::1]:40001 -> [::1]:5354. Each dump is two recv() buffers: records,
then NLMSG_DONE.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from netjail.backends.model import Socket
from netjail.backends.system.sockdiag import (
    NLMSG_ERROR,
    OWNED_STATES,
    SOCK_DIAG_BY_FAMILY,
    DumpCache,
    Flow,
    Known,
    Unavailable,
    dump_request,
    parse_dump,
    parse_flows,
)

TCP4 = [
    bytes.fromhex(
        "7c000000140002000100000058190000020a00001f9000007f0000010000000000000000000000000000000000000000"
        "00000000000000000000000043ed0000000000000000000000000000800000000000000042a305000500080000000000"
        "08000f00000000000c001500010000000000000006001600520000007c00000014000200010000005819000002010000"
        "bdc823827f0000010000000000000000000000007f0000010000000000000000000000000000000044ed000000000000"
        "0000000000000000000000000000000046a30500050008000000000008000f00000000000c0015000100000000000000"
        "06001600520000007c000000140002000100000058190000020100001f90e5c47f000001000000000000000000000000"
        "7f0000010000000000000000000000000000000045ed0000000000000000000000000000000000000000000044a30500"
        "050008000000000008000f00000000000c001500010000000000000006001600520000007c0000001400020001000000"
        "5819000002010000e5c41f907f0000010000000000000000000000007f00000100000000000000000000000000000000"
        "46ed0000000000000000000000000000000000000000000043a30500050008000000000008000f00000000000c001500"
        "01000000000000000600160052000000"
    ),
    bytes.fromhex("1400000003000200010000005819000000000000"),
]

TCP6 = [
    bytes.fromhex(
        "840000001400020001000000581900000a0a000023820000000000000000000000000000000000000000000000000000"
        "00000000000000000000000047ed0000000000000000000000000000800000000000000045a305000500080000000000"
        "05000b000000000008000f00000000000c001500010000000000000006001600120000007c0000001400020001000000"
        "581900000a0100002382bdc800000000000000000000ffff7f00000100000000000000000000ffff7f00000100000000"
        "48ed0000000000000000000000000000000000000000000047a30500050008000000000008000f00000000000c001500"
        "01000000000000000600160012000000"
    ),
    bytes.fromhex("1400000003000200010000005819000000000000"),
]

UDP4 = [
    bytes.fromhex(
        "7c0000001400020001000000581900000207000014e90000000000000000000000000000000000000000000000000000"
        "00000000000000000000000049ed0000000000000000000000000000000000000000000048a305000500080000000000"
        "08000f00000000000c00150001000000000000000600160050000000"
    ),
    bytes.fromhex("1400000003000200010000005819000000000000"),
]

UDP6 = [
    bytes.fromhex(
        "7c0000001400020001000000581900000a0100009c4114ea000000000000000000000000000000010000000000000000"
        "0000000000000001000000004aed0000000000000000000000000000000000000000000049a305000500080000000000"
        "08000f00000000000c00150001000000000000000600160010000000"
    ),
    bytes.fromhex("1400000003000200010000005819000000000000"),
]


def parse(bufs: list[bytes], proto: str) -> list[Socket]:
    out: list[Socket] = []
    done = [parse_dump(b, proto, out) for b in bufs]
    assert done == [False] * (len(bufs) - 1) + [True]
    return out


def test_tcp_ipv4_listener_and_established_pairs() -> None:
    assert parse(TCP4, "tcp") == [
        Socket("inet", "tcp", "127.0.0.1", 8080, "0.0.0.0", 0, "LISTEN", 369474),
        Socket("inet", "tcp", "127.0.0.1", 48584, "127.0.0.1", 9090, "ESTABLISHED", 369478),
        Socket("inet", "tcp", "127.0.0.1", 8080, "127.0.0.1", 58820, "ESTABLISHED", 369476),
        Socket("inet", "tcp", "127.0.0.1", 58820, "127.0.0.1", 8080, "ESTABLISHED", 369475),
    ]


def test_tcp_ipv6_with_v4_mapped_peer() -> None:
    assert parse(TCP6, "tcp") == [
        Socket("inet6", "tcp", "::", 9090, "::", 0, "LISTEN", 369477),
        Socket("inet6", "tcp", "::ffff:127.0.0.1", 9090, "::ffff:127.0.0.1", 48584, "ESTABLISHED", 369479),
    ]


def test_udp_unconnected_and_connected() -> None:
    assert parse(UDP4, "udp") == [Socket("inet", "udp", "0.0.0.0", 5353, "0.0.0.0", 0, "UNCONN", 369480)]
    assert parse(UDP6, "udp") == [Socket("inet6", "udp", "::1", 40001, "::1", 5354, "ESTABLISHED", 369481)]


def test_records_and_done_in_one_buffer() -> None:
    out: list[Socket] = []
    assert parse_dump(TCP6[0] + TCP6[1], "tcp", out)
    assert len(out) == 2


def test_cache_reuses_objects_and_keep_collects_live_ones() -> None:
    keep: dict[int, Known] = {}
    first = parse(TCP4, "tcp")
    out: list[Socket] = []
    parse_dump(TCP4[0], "tcp", out, keep=keep)
    again: list[Socket] = []
    keep2: dict[int, Known] = {}
    parse_dump(TCP4[0], "tcp", again, cache=keep, keep=keep2)
    assert again == first and all(a is b for a, b in zip(again, out, strict=True))
    assert len(keep2) == 4


def test_error_reply_raises_with_its_errno() -> None:
    request = dump_request(socket.AF_INET, "udp")
    reply = struct.pack("=IHHII", 16 + 4 + len(request), NLMSG_ERROR, 0, 1, 0)
    reply += struct.pack("=i", -errno.ENOENT) + request
    with pytest.raises(Unavailable) as info:
        parse_dump(reply, "udp", [])
    assert info.value.errno == errno.ENOENT
    assert not isinstance(info.value, OSError)  # never taken for a process that went away


def test_truncated_record_is_refused() -> None:
    with pytest.raises(Unavailable):
        parse_dump(TCP4[0][:100], "tcp", [])


def test_dump_request_layout() -> None:
    req = dump_request(socket.AF_INET6, "udp", seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, seq) == (len(req), SOCK_DIAG_BY_FAMILY, 7) and len(req) == 16 + 56
    assert flags == 0x301  # NLM_F_REQUEST | NLM_F_DUMP
    family, proto, _ext, _pad, states = struct.unpack_from("=BBBBI", req, 16)
    assert (family, proto, states) == (socket.AF_INET6, socket.IPPROTO_UDP, OWNED_STATES)
    assert not states & (1 << 6)  # TIME_WAIT: no owner, not asked for


def test_dump_cache_reuses_unchanged_buffers_and_records_across_refreshes() -> None:
    cache = DumpCache()
    first: list[Socket] = []
    assert not cache.decode(TCP4[0], "tcp", first)
    assert cache.decode(TCP4[1], "tcp", first)
    cache.rotate()

    again: list[Socket] = []
    cache.decode(TCP4[0], "tcp", again)  # byte-identical buffer: the same objects come back
    assert all(a is b for a, b in zip(again, first, strict=True))
    changed = bytearray(TCP4[0])
    changed[16 + 1] = 0x08  # first record: LISTEN -> CLOSE_WAIT (state byte of inet_diag_msg)
    mixed: list[Socket] = []
    cache.decode(bytes(changed), "tcp", mixed)
    assert mixed[0].state == "CLOSE_WAIT" and mixed[0] is not first[0]
    assert all(a is b for a, b in zip(mixed[1:], first[1:], strict=True))  # unchanged records reused
    cache.rotate()

    cache.rotate()  # a refresh that saw nothing: everything is forgotten
    fresh: list[Socket] = []
    cache.decode(TCP4[0], "tcp", fresh)
    assert fresh == first and fresh[0] is not first[0]


def _with_tcp_info(
    record: bytes, acked: int, received: int, before: bytes = b"", info_len: int = 232
) -> bytes:
    """The record with `before` (whole attributes) and an INET_DIAG_INFO attribute appended:
    a tcp_info of `info_len` bytes whose bytes_acked/bytes_received (offsets 120, 128) are set."""
    info = bytearray(info_len)
    if info_len >= 136:
        struct.pack_into("=QQ", info, 120, acked, received)
    attr = struct.pack("=HH", 4 + info_len, 2) + bytes(info)
    body = record[: struct.unpack_from("=I", record)[0]] + before + attr
    return struct.pack("=I", len(body)) + body[4:]


def _records(buffer: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(buffer):
        length = struct.unpack_from("=I", buffer, off)[0]
        out.append(buffer[off : off + length])
        off += (length + 3) & ~3
    return out


def test_tcp_info_byte_counts_by_inode_wherever_the_attribute_sits() -> None:
    first, second, third, fourth = _records(TCP4[0])
    extra = struct.pack("=HH", 8, 8) + struct.pack("=I", 7)  # one more attribute (a mark) before it
    buffer = (
        _with_tcp_info(first, 0, 0)  # the listener: nothing moved
        + _with_tcp_info(second, 5_000_000_000, 1234)  # past 32 bits
        + _with_tcp_info(third, 99, 77, before=extra)  # the fast path's guess misses: a walk
        + _with_tcp_info(fourth, 1, 2, info_len=104)  # a tcp_info too old to hold the counts
    )
    traffic: dict[int, tuple[int, int]] = {}
    out: list[Socket] = []
    assert not parse_dump(buffer, "tcp", out, traffic=traffic)
    assert parse_dump(TCP4[1], "tcp", out, traffic=traffic)  # NLMSG_DONE
    inodes = [s.inode for s in _plain(TCP4[0])]
    assert [s.inode for s in out] == inodes and out == _plain(TCP4[0])  # the same sockets
    assert traffic == {inodes[0]: (0, 0), inodes[1]: (5_000_000_000, 1234), inodes[2]: (99, 77)}
    same: list[Socket] = []
    parse_dump(buffer, "tcp", same)  # not asked for: the attributes are skipped
    assert same == out


def _plain(buffer: bytes) -> list[Socket]:
    out: list[Socket] = []
    parse_dump(buffer, "tcp", out)
    return out


def test_dump_request_asks_for_tcp_info_only_when_told() -> None:
    from netjail.backends.system.sockdiag import EXT_INFO

    assert EXT_INFO == 0b10  # 1 << (INET_DIAG_INFO - 1)
    asked = dump_request(socket.AF_INET6, "tcp", ext=EXT_INFO)
    assert asked[16:19] == bytes([socket.AF_INET6, socket.IPPROTO_TCP, EXT_INFO])  # family, proto, ext
    assert dump_request(socket.AF_INET, "tcp")[18] == 0


def test_tcp_info_run_of_same_shaped_records_decodes_like_one_by_one() -> None:
    """The C-speed run over same-shaped records keeps the order, counts and reused objects,
    and hands back to the walk at a record shaped otherwise (then picks up a new run)."""
    recs = _records(TCP4[0])
    extra = struct.pack("=HH", 8, 8) + struct.pack("=I", 7)
    buffer = (
        b"".join(_with_tcp_info(r, i, 10 * i) for i, r in enumerate(recs, 1))  # one run
        + _with_tcp_info(recs[0], 0, 0, before=extra)  # another shape: a walk, then a run
        + _with_tcp_info(recs[1], 7, 8, before=extra)
        + _with_tcp_info(recs[2], 5, 6)  # the first shape again
        + TCP4[1]
    )
    keep: dict[int, Known] = {}
    traffic: dict[int, tuple[int, int]] = {}
    out: list[Socket] = []
    assert parse_dump(buffer, "tcp", out, keep=keep, traffic=traffic)
    plain = _plain(TCP4[0])
    inodes = [s.inode for s in plain]
    assert out == plain + plain[:3]
    # A later record of the same inode overwrites the earlier one's counts (as a dict would).
    assert traffic == {inodes[0]: (0, 0), inodes[1]: (7, 8), inodes[2]: (5, 6), inodes[3]: (4, 40)}
    again: list[Socket] = []
    parse_dump(buffer, "tcp", again, cache=keep, traffic={})
    assert again == out and all(s is keep[s.inode][2] for s in again)  # unchanged records reused


def test_flows_keep_inode_0_records_and_read_the_mark_attribute() -> None:
    """The accept queue's check (accept_queue.py) needs what parse_dump skips: records without an
    inode, and each one's INET_DIAG_MARK (15; every full socket's record carries it, 0 too)."""
    first, second, *_ = _records(TCP4[0])
    queued = bytearray(second)
    struct.pack_into("=I", queued, 16 + 72 - 4, 0)  # no inode: in no fd table yet
    at = 16 + 72
    while struct.unpack_from("=H", queued, at + 2)[0] & 0x3FFF != 15:
        at += (struct.unpack_from("=H", queued, at)[0] + 3) & ~3
    struct.pack_into("=I", queued, at + 4, 0x1000000)
    flows: list[Flow] = []
    assert not parse_flows(first + bytes(queued), flows)
    assert [(f.inode != 0, f.mark) for f in flows] == [(True, 0), (False, 0x1000000)]
    assert flows[0].lport == 8080 and flows[0].local == socket.inet_aton("127.0.0.1")
    assert parse_flows(TCP4[1], flows)  # NLMSG_DONE
