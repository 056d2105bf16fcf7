"""How a jail chain's log rule names its jail to the collector, and what it copies.

Every jail chain (NJ-O-/NJ-I-/NJ-F-<jail>) logs what it is about to drop to one NFLOG group with
the prefix `netjail:<lane>:<jail>` (jail names are [A-Za-z0-9_.-], so the prefix parses without
escapes). The copy is cut at SNAPLEN bytes: an IPv6 header with extension headers, a UDP header
and a DNS question of a full-length name fit; the rest of a packet is never copied.
"""

from __future__ import annotations

import os

GROUP_ENV = "NETJAIL_NFLOG_GROUP"
DEFAULT_GROUP = 5770  # a group number no common tool defaults to (ulogd uses 0-2, tcpdump asks)
SNAPLEN = 384
RATE = "200/sec"  # per jail and lane: a flood costs the machine at most this many copies a second
BURST = 400
_TAG = "netjail"
LANES = {"out": "o", "in": "i", "fwd": "f", "answer": "a"}
# forwarded: from a netns jail outwards; "a": a copy of a DNS answer the jail was allowed to
# receive (not an attempt: what names its later attempts, docs/attempts.md)
_LANE_DIRECTION = {"o": "out", "i": "in", "f": "out", "a": "answer"}


def group() -> int:
    raw = os.environ.get(GROUP_ENV, "")
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    return DEFAULT_GROUP


def make(lane: str, jail: str) -> str:
    return f"{_TAG}:{LANES[lane]}:{jail}"


def parse(text: str) -> tuple[str, str] | None:
    """(direction, jail) of a prefix this module made, None for anything else on the group."""
    tag, _, rest = text.partition(":")
    lane, _, jail = rest.partition(":")
    if tag != _TAG or lane not in _LANE_DIRECTION or not jail:
        return None
    return _LANE_DIRECTION[lane], jail
