"""Validation of user-supplied allow-lists (pure, no I/O; jail names: jail_names.py).

Allow-list semantics follow systemd's `IPAddressDeny=any` + `IPAddressAllow=`: everything is
denied except the listed prefixes; `CIDR:PORT` narrows an entry to one remote port (TCP and
UDP). IPv6 entries with a port use brackets: `[fd00::/64]:443`.
"""

from __future__ import annotations

import ipaddress
import re

from netjail.backends.errors import BadInput
from netjail.backends.model import AllowEntry

_BRACKETED = re.compile(r"\[(?P<addr>[^\]]+)\](?::(?P<port>[^:]*))?")


def parse_port(text: str, entry: str) -> int:
    # ASCII digits only: str.isdigit() also takes '²', which int() then refuses (a traceback
    # in the CLI, a crash of the TUI's dialog), and int() reads Arabic-Indic digits
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise BadInput(f"bad port in allow entry {entry!r}: {text!r} (1-65535)")
    return int(text)


def _network(text: str, entry: str) -> str:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise BadInput(f"bad allow entry {entry!r}: {text!r} is not an IP address or CIDR") from None
    mapped = net.network_address.ipv4_mapped if isinstance(net, ipaddress.IPv6Network) else None
    if mapped is not None and net.prefixlen >= 96:
        # ::ffff:a.b.c.d reaches the wire as IPv4: an IPv6 rule would never match it
        return str(ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False))
    return str(net)


def parse_allow(entry: str) -> AllowEntry:
    """`10.0.0.0/8`, `10.1.2.3:443`, `10.0.0.0/8:53`, `fd00::/64`, `[fd00::1]:443`."""
    text = entry.strip()
    if not text:
        raise BadInput("empty allow entry")
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        port = bracketed["port"]
        cidr = _network(bracketed["addr"], entry)
        return AllowEntry(cidr, parse_port(port, entry) if port is not None else None)
    if text.count(":") == 1:  # IPv4 with a port; IPv6 always has two or more colons
        addr, port = text.split(":")
        cidr = _network(addr, entry)
        if ":" in cidr:
            raise BadInput(f"bad allow entry {entry!r}: write IPv6 with a port as [ADDR]:PORT")
        return AllowEntry(cidr, parse_port(port, entry))
    return AllowEntry(_network(text, entry))


def parse_allow_list(entries: list[str] | tuple[str, ...]) -> tuple[AllowEntry, ...]:
    """Parse and de-duplicate, keeping order. Commas and spaces also separate entries."""
    parsed: list[AllowEntry] = []
    for chunk in entries:
        for entry in re.split(r"[,\s]+", chunk.strip()):
            if entry and (e := parse_allow(entry)) not in parsed:
                parsed.append(e)
    return tuple(parsed)
