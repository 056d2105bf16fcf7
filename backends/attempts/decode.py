"""From a logged packet's bytes to what a person asks: who, which port, which protocol, a new
connection or data, which DNS name (pure: no I/O).

IP and transport headers are a few fixed offsets; DNS questions go to dnslib, never to a parser
of our own: the payload is written by the jailed, possibly hostile, program.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import dnslib

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
_V6_EXTENSIONS = {0, 43, 60}  # hop-by-hop, routing, destination options: skipped to the L4 header
_V6_FRAGMENT = 44
DNS_PORT = 53


@dataclass(frozen=True, slots=True)
class Attempt:
    """One dropped packet as the log records it. `remote` is the other end: the destination of
    an outgoing packet, the source of one that came in for a jailed socket."""

    direction: str  # "out" | "in"
    proto: str  # tcp, udp, icmp, icmpv6, sctp, or "ip:<number>"
    remote: str
    port: int  # remote port going out; the jailed local port coming in; ICMP type for icmp
    kind: str  # "syn" (a new TCP connection), "data", "udp", "echo", "icmp:<type>", ...
    length: int  # the packet's own length (IP total length), not what was copied
    dns: tuple[tuple[str, str], ...] = ()  # (name, qtype) of a DNS query in this packet
    local: str = ""  # the jailed end: source address going out, destination coming in
    lport: int = 0  # and its port (0: no ports)
    answers: tuple[tuple[str, str], ...] = ()  # (address, name) of a DNS answer's A/AAAA records


def decode(family: int, payload: bytes, direction: str) -> Attempt | None:
    """None when the copy is too short to hold even the IP header."""
    if family == socket.AF_INET:
        if len(payload) < 20 or payload[0] >> 4 != 4:
            return None
        header = (payload[0] & 0x0F) * 4
        proto = payload[9]
        length = int.from_bytes(payload[2:4], "big")
        src, dst = payload[12:16], payload[16:20]
        fragment = int.from_bytes(payload[6:8], "big") & 0x1FFF
        l4 = payload[header:] if fragment == 0 else b""
    elif family == socket.AF_INET6:
        if len(payload) < 40 or payload[0] >> 4 != 6:
            return None
        length = 40 + int.from_bytes(payload[4:6], "big")
        src, dst = payload[8:24], payload[24:40]
        proto, offset = payload[6], 40
        while proto in _V6_EXTENSIONS and offset + 8 <= len(payload):
            proto, offset = payload[offset], offset + 8 * (payload[offset + 1] + 1)
        if proto == _V6_FRAGMENT and offset + 8 <= len(payload):
            first = int.from_bytes(payload[offset + 2 : offset + 4], "big") & 0xFFF8 == 0
            proto, offset = payload[offset], offset + 8 if first else len(payload) + 1
        l4 = payload[offset:] if offset <= len(payload) else b""
    else:
        return None
    incoming = direction != "out"  # "in" (dropped), "answer" (an allowed DNS answer's copy)
    remote_raw, local_raw = (src, dst) if incoming else (dst, src)
    remote = socket.inet_ntop(family, remote_raw)  # C, a tenth of ipaddress's cost
    name = PROTO_NAMES.get(proto, f"ip:{proto}")
    port, kind, lport = 0, "data", 0
    dns: tuple[tuple[str, str], ...] = ()
    answers: tuple[tuple[str, str], ...] = ()
    if proto in (6, 17, 132) and len(l4) >= 4:
        port = dport = int.from_bytes(l4[2:4], "big")  # out: theirs; in: the jailed listener's
        lport = dport if incoming else int.from_bytes(l4[0:2], "big")
        if proto == 6:
            flags = l4[13] if len(l4) > 13 else 0
            kind = "syn" if flags & 0x02 and not flags & 0x10 else "data"
        elif proto == 17:
            kind = "udp"
            if dport == DNS_PORT and not incoming:
                dns = dns_questions(l4[8:])
            elif incoming and int.from_bytes(l4[0:2], "big") == DNS_PORT:
                answers = dns_answers(l4[8:])
        else:
            kind = "sctp"
    elif proto in (1, 58) and l4:
        port = l4[0]
        echo = (proto == 1 and l4[0] == 8) or (proto == 58 and l4[0] == 128)
        kind = "echo" if echo else f"{name}:{l4[0]}"
    local = socket.inet_ntop(family, local_raw)
    return Attempt(direction, name, remote, port, kind, length, dns, local, lport, answers)


def dns_questions(message: bytes) -> tuple[tuple[str, str], ...]:
    """The questions of a DNS query, () for anything dnslib cannot read (a cut copy, not DNS)."""
    try:
        record = dnslib.DNSRecord.parse(message)
    except Exception:  # dnslib raises many kinds on hostile bytes; none of them is ours
        return ()
    if record.header.qr:  # an answer, not a query
        return ()
    out = []
    for question in record.questions[:8]:
        qname = str(question.qname).rstrip(".")
        out.append((qname, dnslib.QTYPE.get(question.qtype, str(question.qtype))))
    return tuple(out)


def dns_answers(message: bytes) -> tuple[tuple[str, str], ...]:
    """(address, name) for each A and AAAA record of a DNS answer, named by the question the
    program asked (through any CNAME chain); () for anything dnslib cannot read (an answer cut
    at the snap length loses its last records, never the first ones: they are tried in order)."""
    try:
        record = dnslib.DNSRecord.parse(message)
    except Exception:  # as dns_questions: hostile or cut bytes
        return ()
    if not record.header.qr:
        return ()
    asked = str(record.questions[0].qname).rstrip(".") if record.questions else ""
    out = []
    for rr in record.rr[:32]:
        if rr.rtype in (dnslib.QTYPE.A, dnslib.QTYPE.AAAA):
            out.append((str(rr.rdata), asked or str(rr.rname).rstrip(".")))
    return tuple(out)


def repeatable(family: int, p: bytes) -> bool:
    """Whether decode reads nothing of this packet beyond its IP header, ports, TCP flags and
    ICMP type, at the fixed offsets of a header without options (tally.py keys on those bytes).
    Not: IPv4 options or fragments, IPv6 extension headers, DNS either way (the question or the
    answer is further in).
    A copy shorter than those offsets is keyed whole (its length is in the key)."""
    if family == socket.AF_INET and len(p) >= 20 and p[0] == 0x45 and p[6] & 0x3F == 0 and p[7] == 0:
        proto = p[9]
        return proto in (1, 6) or (proto == 17 and b"\x00\x35" not in (p[20:22], p[22:24]))
    if family == socket.AF_INET6 and len(p) >= 40 and p[0] >> 4 == 6:
        proto = p[6]
        return proto in (6, 58) or (proto == 17 and b"\x00\x35" not in (p[40:42], p[42:44]))
    return False
