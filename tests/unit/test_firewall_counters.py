"""The counter walk over a table blob, on a hand-built IPv4 filter table."""

from __future__ import annotations

import struct

from netjail.backends.firewall.counters import jail_counters
from netjail.backends.firewall.xt_layout import IPV4, VERDICT_ACCEPT, VERDICT_DROP, VERDICT_RETURN
from netjail.backends.model import Counters

STANDARD_SIZE = 40  # xt_standard_target: header 32, int verdict, padded to 8
ERROR_SIZE = 64  # xt_error_target: header 32, errorname[30], padded to 8


def entry(target: bytes, pkts: int = 0, nbytes: int = 0) -> bytes:
    head = bytearray(IPV4.size)
    struct.pack_into("=HH", head, IPV4.target_offset, IPV4.size, IPV4.size + len(target))
    struct.pack_into("=QQ", head, IPV4.counters, pkts, nbytes)
    return bytes(head) + target


def standard(verdict: int, pkts: int = 0, nbytes: int = 0) -> bytes:
    target = struct.pack("=H29sBi4x", STANDARD_SIZE, b"", 0, verdict)
    return entry(target, pkts, nbytes)


def error(name: str) -> bytes:
    target = struct.pack("=H29sB30s2x", ERROR_SIZE, b"ERROR", 0, name.encode())
    return entry(target)


def module(name: str, pkts: int, nbytes: int) -> bytes:
    return entry(struct.pack("=H29sB8x", 40, name.encode(), 0), pkts, nbytes)


def table(chains: list[list[bytes]]) -> tuple[memoryview, frozenset[int]]:
    """Built-in chains (INPUT, FORWARD, OUTPUT) first, then the rest; returns (blob, hook starts)."""
    blob = b""
    starts = []
    for i, chain in enumerate(chains):
        if i < 3:
            starts.append(len(blob))
        blob += b"".join(chain)
    return memoryview(blob), frozenset(starts)


def test_drop_and_return_rules_counted_tail_and_jumps_ignored() -> None:
    blob, starts = table(
        [
            [standard(1000, 99, 9900), standard(VERDICT_ACCEPT, 1, 1)],  # INPUT: jump, policy
            [standard(VERDICT_ACCEPT, 2, 2)],  # FORWARD policy
            [standard(VERDICT_DROP, 50, 5000), standard(VERDICT_ACCEPT, 3, 3)],  # OUTPUT (not ours)
            [error("NETJAIL-OUT"), standard(2000, 40, 4000), standard(VERDICT_RETURN, 8, 8)],
            [
                error("NJ-O-web"),
                standard(VERDICT_RETURN, 3, 300),
                standard(VERDICT_RETURN, 4, 400),
                module("LOG", 77, 7700),
                standard(VERDICT_DROP, 5, 500),
                standard(VERDICT_RETURN, 7, 700),  # the chain's implicit tail
            ],
            [error("NJ-I-web"), standard(VERDICT_DROP, 1, 10), standard(VERDICT_RETURN, 9, 9)],
            [error("NJ-O-empty"), standard(VERDICT_RETURN, 6, 6)],
            [error("USERCHAIN"), standard(VERDICT_DROP, 11, 11), standard(VERDICT_RETURN, 0, 0)],
            [error("ERROR")],
        ]
    )
    assert jail_counters(IPV4, blob, starts) == {
        "web": Counters(dropped_packets=6, dropped_bytes=510, allowed_packets=7, allowed_bytes=700),
        "empty": Counters(),
    }


def test_builtin_chain_after_a_user_chain_is_not_attributed_to_it() -> None:
    blob = error("NJ-O-a") + standard(VERDICT_DROP, 1, 1) + standard(VERDICT_RETURN, 0, 0)
    builtin_at = len(blob)
    blob += standard(VERDICT_DROP, 100, 100) + standard(VERDICT_ACCEPT) + error("ERROR")
    counted = jail_counters(IPV4, memoryview(blob), frozenset({builtin_at}))
    assert counted == {"a": Counters(dropped_packets=1, dropped_bytes=1)}
