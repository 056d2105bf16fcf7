"""Parse the block dialog's allow-list field: `10.0.0.0/8, 192.168.1.5:53 [fd00::1]:443`.

Pure functions so the dialog can validate on every keystroke and tests can feed captured text.
"""

from __future__ import annotations

import ipaddress
import re

from netjail.backends.model import AllowEntry

_SPLIT = re.compile(r"[,\s]+")
_BRACKETED = re.compile(r"^\[(?P<net>[^\]]+)\](?::(?P<port>[^:]*))?$")


class AllowListError(ValueError):
    """One line naming the entry that is wrong and why."""


def _network(text: str, entry: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise AllowListError(f"{entry!r}: not an IP address or CIDR") from None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise AllowListError(f"{entry!r}: port must be 1-65535")
    return int(text)


def parse_entry(entry: str) -> AllowEntry:
    if match := _BRACKETED.match(entry):
        port = match["port"]
        return AllowEntry(_network(match["net"], entry), None if port is None else _port(port, entry))
    if entry.count(":") == 1:  # IPv4 (or v4 CIDR) with a port
        net, port = entry.split(":")
        return AllowEntry(_network(net, entry), _port(port, entry))
    return AllowEntry(_network(entry, entry))  # IPv4, or IPv6 without a port (use [..]:port)


def parse_allow_list(text: str) -> tuple[AllowEntry, ...]:
    """Every entry, normalised, duplicates dropped; AllowListError on the first bad one."""
    entries: dict[AllowEntry, None] = {}
    for raw in _SPLIT.split(text.strip()):
        if raw:
            entries.setdefault(parse_entry(raw), None)
    return tuple(entries)
