"""tally.Tally against the plain path (parse every message, decode every packet): the same rows,
names and counts for every kind of packet, with most copies answered by one lookup."""

from __future__ import annotations

import socket
import struct

import dnslib
from netjail.backends.attempts import prefix
from netjail.backends.attempts.batch import Batch
from netjail.backends.attempts.decode import decode
from netjail.backends.attempts.nflog import (
    NFNL_SUBSYS_ULOG,
    NFULA_GID,
    NFULA_PACKET_HDR,
    NFULA_PAYLOAD,
    NFULA_PREFIX,
    NFULA_TIMESTAMP,
    NFULA_UID,
    parse_batch,
)
from netjail.backends.attempts.tally import Tally

from tests.unit.test_attempts_decode import ipv4, ipv6, tcp, udp


def message(
    family: int, payload: bytes, tag: str, *, uid: int | None = 1000, stamp: int | None = None
) -> bytes:
    """One NFULNL_MSG_PACKET laid out as the kernel lays it out (nfnetlink_log.c)."""
    attrs = [(NFULA_PACKET_HDR, struct.pack("!HBx", 0x0800, 3)), (NFULA_PREFIX, tag.encode() + b"\0")]
    if stamp is not None:
        attrs.append((NFULA_TIMESTAMP, struct.pack("!QQ", stamp, stamp % 1000)))
    if uid is not None:
        attrs += [(NFULA_UID, struct.pack("!I", uid)), (NFULA_GID, struct.pack("!I", uid))]
    attrs.append((NFULA_PAYLOAD, payload))
    body = struct.pack("=BBH", family, 0, socket.htons(5770))
    for kind, data in attrs:
        raw = struct.pack("=HH", 4 + len(data), kind) + data
        body += raw + b"\0" * (-len(raw) % 4)
    return struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_ULOG << 8, 0, 0, 0) + body


def with_id(pkt: bytes, ident: int) -> bytes:
    """An IPv4 packet as the next one of a flood: another id, so another checksum."""
    return pkt[:4] + struct.pack("!H", ident) + pkt[6:10] + struct.pack("!H", ident ^ 0xBEEF) + pkt[12:]


def plain(reads: list[bytes], at: float) -> Batch:
    batch = Batch()
    for data in reads:
        for p in parse_batch(data):
            lane = prefix.parse(p.prefix)
            a = decode(p.family, p.payload, lane[0]) if lane else None
            if lane and a:
                batch.add(lane[1], at, p.uid, a)
    return batch


def same(a: Batch, b: Batch) -> None:
    assert a.rows == b.rows
    assert a.names == b.names
    assert a.packets == b.packets
    assert events(a) == events(b)


def events(batch: Batch) -> dict[str, int]:
    """Copies per raw event: the plain path has one event a copy, a tally one a read."""
    out: dict[str, int] = {}
    for at, jail, uid, attempt, n in batch.events:
        out[repr((at, jail, uid, attempt))] = out.get(repr((at, jail, uid, attempt)), 0) + n
    return out


OUT, IN = prefix.make("out", "web"), prefix.make("in", "web")
QUERY = dnslib.DNSRecord.question("a.example", "A").pack()
OTHER_QUERY = dnslib.DNSRecord.question("b.example", "AAAA").pack()
KINDS = [
    (socket.AF_INET, ipv4(6, "10.0.0.2", "192.0.2.7", tcp(40000, 443, 0x02)), OUT),
    (socket.AF_INET, ipv4(6, "10.0.0.2", "192.0.2.7", tcp(40000, 443, 0x10)), OUT),  # data: a flag apart
    (socket.AF_INET, ipv4(6, "10.0.0.2", "192.0.2.7", tcp(40000, 444, 0x02)), OUT),  # a port apart
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 9, b"xx")), OUT),
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.8", udp(1, 9, b"xx")), OUT),  # another remote
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 9, b"xx")), IN),  # another lane
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 9, b"xx")), prefix.make("out", "db")),
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 53, QUERY)), OUT),  # DNS: decoded each
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 53, OTHER_QUERY)), OUT),
    (socket.AF_INET, ipv4(1, "10.0.0.2", "192.0.2.7", bytes([8, 0, 0, 0]) + b"\0" * 16), OUT),
    (socket.AF_INET, ipv4(1, "10.0.0.2", "192.0.2.7", bytes([3, 3, 0, 0]) + b"\0" * 16), IN),
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", b"\0" * 8, frag=10), OUT),  # a later fragment
    (socket.AF_INET6, ipv6(6, "fd00::2", "fd00::1", tcp(5555, 8080, 0x02)), OUT),
    (socket.AF_INET6, ipv6(6, "fd00::2", "fd00::1", tcp(5555, 8080, 0x12)), OUT),
    (socket.AF_INET6, ipv6(17, "fd00::2", "fd00::1", udp(5555, 8080, b"y" * 8)), OUT),
    (socket.AF_INET6, ipv6(17, "fd00::2", "fd00::1", udp(5555, 53, QUERY)), OUT),
    (socket.AF_INET6, ipv6(58, "fd00::2", "fd00::1", bytes([128, 0, 0, 0]) + b"\0" * 16), OUT),
    (socket.AF_INET6, ipv6(0, "fd00::2", "fd00::1", bytes([17, 0]) + b"\0" * 6 + udp(1, 7, b"z")), OUT),
    (socket.AF_INET, ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 9, b"xx")), "ulogd:not-ours"),
    (socket.AF_INET, b"\x45\x00", OUT),  # cut before the IP header ends
]


def test_a_tally_answers_as_decode_for_every_kind_of_packet_and_lane_and_uid() -> None:
    reads = []
    for r in range(3):  # the later reads answer from the keys the first one left
        data = b""
        for family, pkt, tag in KINDS:
            for copy in range(4):
                ident = r * 100 + copy
                p = with_id(pkt, ident) if family == socket.AF_INET and len(pkt) >= 20 else pkt
                uid = 1000 if copy % 2 else 0
                data += message(family, p, tag, uid=uid, stamp=1_700_000_000 + ident if tag == IN else None)
        reads.append(data + struct.pack("=IHHII", 20, 3, 2, 0, 0) + b"\0" * 4)  # NLMSG_DONE
    tally, batch = Tally(), Batch()
    for data in reads:
        tally.feed(data, batch, 5.0)
    same(batch, plain(reads, 5.0))
    assert tally.skipped == 3 * 4 * 2  # the other prefix, the cut copy
    # a repeatable kind parsed once per uid, whatever its IP id and timestamp; DNS, fragments
    # and v6 extension headers every time (and once more to learn that, per uid)
    each_time = 5
    assert tally.parsed == 2 * (len(KINDS) - each_time) + (3 * 4 + 2) * each_time


def test_a_flood_of_copies_is_one_lookup_each_and_one_row() -> None:
    pkt = ipv4(17, "10.0.0.2", "192.0.2.7", udp(41000, 9, b"x" * 32))
    data = b"".join(message(socket.AF_INET, with_id(pkt, i), OUT) for i in range(900))
    stamped = b"".join(message(socket.AF_INET, with_id(pkt, i), IN, stamp=10**9 + i) for i in range(900))
    tally, batch = Tally(), Batch()
    tally.feed(data, batch, 1.0)
    tally.feed(stamped, batch, 2.0)
    assert tally.parsed == 2  # the first copy of each lane; the timestamps vary, the key does not
    rows = {(k[1], r.count, r.bytes, r.first, r.last) for k, r in batch.rows.items()}
    assert rows == {("out", 900, 900 * 60, 1.0, 1.0), ("in", 900, 900 * 60, 2.0, 2.0)}
    assert [(e[3].direction, e[4]) for e in batch.events] == [("out", 900), ("in", 900)]


def test_keys_are_forgotten_past_the_limit_and_still_answer() -> None:
    tally, batch = Tally(), Batch()
    tally.LIMIT = 8
    pkts = [ipv4(17, "10.0.0.2", "192.0.2.7", udp(1, 1000 + i, b"q")) for i in range(20)]
    reads = [b"".join(message(socket.AF_INET, p, OUT) for p in pkts)] * 2
    for data in reads:
        tally.feed(data, batch, 1.0)
    same(batch, plain(reads, 1.0))
