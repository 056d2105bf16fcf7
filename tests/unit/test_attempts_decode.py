"""The attempts log's pure parts: packets decoded from their bytes, NFLOG batches parsed, the
SQLite log's bounds (tests/integration/test_attempts_log.py has the kernel side)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

import dnslib
import pytest
from netjail.app.cli_attempts import duration
from netjail.backends.attempts import prefix
from netjail.backends.attempts.decode import Attempt, decode, dns_questions
from netjail.backends.attempts.nflog import (
    NFNL_SUBSYS_ULOG,
    NFULA_PAYLOAD,
    NFULA_PREFIX,
    NFULA_UID,
    parse_batch,
)
from netjail.backends.attempts.store import AttemptLog, Seen


def ipv4(proto: int, src: str, dst: str, l4: bytes, *, frag: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        1,
        frag,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + l4


def ipv6(proto: int, src: str, dst: str, l4: bytes) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(l4),
            proto,
            64,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
        + l4
    )


def tcp(sport: int, dport: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, flags, 1024, 0, 0)


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def test_a_tcp_syn_out_is_a_new_connection_to_the_remote_port() -> None:
    got = decode(socket.AF_INET, ipv4(6, "10.0.0.2", "192.0.2.7", tcp(40000, 443, 0x02)), "out")
    assert got == Attempt("out", "tcp", "192.0.2.7", 443, "syn", 40, (), "10.0.0.2", 40000)
    ack = decode(socket.AF_INET, ipv4(6, "10.0.0.2", "192.0.2.7", tcp(40000, 443, 0x10)), "out")
    assert ack is not None and ack.kind == "data"


def test_incoming_names_the_remote_source_and_the_jailed_port() -> None:
    got = decode(socket.AF_INET6, ipv6(6, "fd00::9", "fd00::1", tcp(5555, 8080, 0x02)), "in")
    assert got == Attempt("in", "tcp", "fd00::9", 8080, "syn", 60, (), "fd00::1", 8080)


def test_a_dns_query_is_decoded_by_dnslib_and_an_answer_is_not_a_question() -> None:
    query = dnslib.DNSRecord.question("telemetry.example.com", "AAAA").pack()
    got = decode(socket.AF_INET, ipv4(17, "10.0.0.2", "10.0.0.53", udp(3333, 53, query)), "out")
    assert got is not None and got.dns == (("telemetry.example.com", "AAAA"),) and got.port == 53
    answer = dnslib.DNSRecord.question("x.example").reply().pack()
    assert dns_questions(answer) == ()


@pytest.mark.parametrize(
    "junk", [b"", b"\x00" * 5, b"\xff" * 300, b"\x12\x34\x01\x00\x00\x01" + b"\xc0" * 40]
)
def test_hostile_or_cut_dns_bytes_give_no_name_and_no_exception(junk: bytes) -> None:
    assert dns_questions(junk) == ()
    got = decode(socket.AF_INET, ipv4(17, "10.0.0.2", "10.0.0.53", udp(1, 53, junk)), "out")
    assert got is not None and got.dns == ()


def test_icmp_echo_and_other_types_and_short_copies() -> None:
    echo = decode(socket.AF_INET, ipv4(1, "10.0.0.2", "10.0.0.1", bytes([8, 0, 0, 0])), "out")
    assert echo is not None and (echo.proto, echo.kind) == ("icmp", "echo")
    v6 = decode(socket.AF_INET6, ipv6(58, "fd00::2", "fd00::1", bytes([128, 0, 0, 0])), "out")
    assert v6 is not None and (v6.proto, v6.kind) == ("icmpv6", "echo")
    assert decode(socket.AF_INET, b"\x45\x00", "out") is None
    assert decode(socket.AF_INET6, ipv4(6, "10.0.0.2", "10.0.0.1", b""), "out") is None  # v4 bytes as v6
    later_fragment = decode(socket.AF_INET, ipv4(17, "10.0.0.2", "10.0.0.1", b"\x00" * 8, frag=10), "out")
    assert later_fragment is not None and later_fragment.port == 0  # no L4 header in it


def test_ipv6_extension_headers_are_walked_to_the_transport_header() -> None:
    hop_by_hop = bytes([17, 0]) + b"\x00" * 6  # next header UDP, 8 bytes
    got = decode(socket.AF_INET6, ipv6(0, "fd00::2", "fd00::1", hop_by_hop + udp(1, 9999, b"x")), "out")
    assert got is not None and (got.proto, got.port) == ("udp", 9999)


def _nflog_message(family: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(5770))
    for kind, data in attrs:
        raw = struct.pack("=HH", 4 + len(data), kind) + data
        body += raw + b"\0" * (-len(raw) % 4)
    return struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_ULOG << 8, 2, 0, 0) + body


def test_a_batch_of_nflog_messages_is_parsed_and_a_cut_one_ends_it() -> None:
    pkt = ipv4(17, "10.0.0.2", "10.0.0.9", udp(1, 9, b"hi"))
    one = _nflog_message(
        socket.AF_INET,
        [(NFULA_PREFIX, b"netjail:o:web\0"), (NFULA_UID, struct.pack("!I", 65534)), (NFULA_PAYLOAD, pkt)],
    )
    got = parse_batch(one + one + one[:30])
    assert len(got) == 2
    assert (got[0].prefix, got[0].uid, got[0].payload) == ("netjail:o:web", 65534, pkt)
    assert parse_batch(_nflog_message(socket.AF_PACKET, [(NFULA_PAYLOAD, pkt)])) == []


def test_prefixes_name_jail_and_direction_and_nothing_else_parses() -> None:
    assert prefix.parse(prefix.make("out", "web-1.x")) == ("out", "web-1.x")
    assert prefix.parse(prefix.make("fwd", "n")) == ("out", "n")
    assert prefix.parse(prefix.make("in", "n")) == ("in", "n")
    for other in ("", "netjail:o:", "ulogd:o:x", "netjail:z:x", "DROP: "):
        assert prefix.parse(other) is None


def _seen(jail: str, remote: str, port: int, at: float) -> Seen:
    return Seen(jail, at, 1000, Attempt("out", "udp", remote, port, "udp", 100, ()))


def test_the_log_aggregates_and_stays_within_its_bounds(tmp_path: Path) -> None:
    d = tmp_path / "state"
    log = AttemptLog(d, events=50, rows_per_jail=10)
    try:
        log.record([_seen("a", "192.0.2.1", 53, 1.0)] * 3 + [_seen("b", "192.0.2.1", 53, 2.0)])
        rows = log.attempts(jail="a")
        assert [(r.remote, r.count, r.bytes, r.first, r.last) for r in rows] == [
            ("192.0.2.1", 3, 300, 1.0, 1.0)
        ]
        log.record([_seen("a", f"192.0.2.{i}", 9, 10.0 + i) for i in range(2, 60)])
        rows = log.attempts(jail="a")
        assert len(rows) == 10 and min(r.last for r in rows) == 10.0 + 50  # the least recent went
        assert log.db is not None
        assert log.db.execute("SELECT count(*) FROM events").fetchone()[0] == 50
        assert len(log.attempts(jail="b")) == 1  # another jail's rows are its own
        log.forget("a")
        assert log.attempts(jail="a") == [] and len(log.attempts()) == 1
    finally:
        log.close()
    assert oct((d / "attempts.sqlite").stat().st_mode & 0o777) == "0o600"


def test_a_reader_makes_no_log_and_refuses_a_symlinked_one(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    log = AttemptLog(d, create=False)
    assert log.db is None and log.attempts() == [] and not (d / "attempts.sqlite").exists()
    log.close()
    (tmp_path / "elsewhere").write_text("")
    (d / "attempts.sqlite").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        AttemptLog(d)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("45", 45)]
)
def test_durations(text: str, seconds: int) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "1.5h", "٣m", "0s", "5w"])
def test_bad_durations(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)
