"""Address selectors for sockets netjail could not mark (pure): the fallback of jail_marks, for
hosts without pidfd_getfd and sockets whose mark belongs to someone else.

A socket's cgroup is fixed when the socket is created (docs/kernel-facts.md #1), and INPUT never
matches by cgroup (#2), so each such socket gets explicit selectors, both directions:

- connected (TCP flow in any state with a peer, connected UDP): its exact 5-tuple, out and in,
  except UDP going out: a connected UDP socket may still sendto() another peer and pick its
  source address per datagram (IP_PKTINFO), so only its local port and family identify it;
- TCP listener: its port in (no handshake completes) and out (SYN-ACKs, and accepted children,
  which share the listener's port and its old cgroup);
- bound, unconnected UDP: its port in and out (out without its address, as above).

A socket netjail could mark needs none of these: its mark covers every packet it sends and,
looked up, every TCP/UDP packet it is sent (firewall/lanes.py).

A dual-stack socket bound to `::` also serves IPv4, so it gets selectors in both families.

`set_entries_for` says the same as entries of the jail's fallback sets (firewall/fallback_sets),
which is what the rules use: one set lookup per direction whatever the number of sockets, where
one rule per socket made every packet of the machine pay for each (docs/firewall.md).
`selectors_for` stays as the reference the set entries are checked against (tests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netjail.backends.firewall.base import Match, SetEntry
from netjail.backends.model import Socket

_WILDCARDS = {"0.0.0.0", "::", ""}


def _host(addr: str) -> tuple[str, str]:
    """(family, CIDR of one host); v4-mapped IPv6 addresses become IPv4."""
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ("inet6", f"{ip}/128") if ip.version == 6 else ("inet", f"{ip}/32")


def _families(sock: Socket) -> tuple[str, ...]:
    if sock.local_addr in _WILDCARDS:
        return ("inet", "inet6") if sock.family == "inet6" else ("inet",)
    return (_host(sock.local_addr)[0],)


def selectors_for(sock: Socket) -> tuple[list[Match], list[Match]]:
    """(out selectors, in selectors) for one socket."""
    out: list[Match] = []
    inn: list[Match] = []
    connected = sock.remote_port != 0 and sock.remote_addr not in _WILDCARDS
    if connected:
        fam, remote = _host(sock.remote_addr)
        local = None if sock.local_addr in _WILDCARDS else _host(sock.local_addr)[1]
        if sock.proto == "udp":
            out.append(Match(fam, "udp", sport=sock.local_port))  # sendto() picks any peer
        else:
            out.append(
                Match(fam, sock.proto, src=local, dst=remote, sport=sock.local_port, dport=sock.remote_port)
            )
        inn.append(
            Match(fam, sock.proto, src=remote, dst=local, sport=sock.remote_port, dport=sock.local_port)
        )
        return out, inn
    if sock.local_port == 0 or (sock.proto == "tcp" and sock.state != "LISTEN"):
        return out, inn  # unbound, or a TCP socket between states: nothing to match yet
    for fam in _families(sock):
        local = None if sock.local_addr in _WILDCARDS else _host(sock.local_addr)[1]
        # UDP: IP_PKTINFO / IP_SENDSRCADDR pick another source address per datagram
        out.append(Match(fam, sock.proto, src=None if sock.proto == "udp" else local, sport=sock.local_port))
        inn.append(Match(fam, sock.proto, dst=local, dport=sock.local_port))
    return out, inn


def selectors_for_all(sockets: Iterable[Socket]) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
    """De-duplicated, order-stable selectors for many sockets."""
    out: dict[Match, None] = {}
    inn: dict[Match, None] = {}
    for sock in sockets:
        o, i = selectors_for(sock)
        out.update(dict.fromkeys(o))
        inn.update(dict.fromkeys(i))
    return tuple(out), tuple(inn)


def _ip(addr: str) -> tuple[str, str]:
    fam, cidr = _host(addr)
    return fam, cidr.split("/", 1)[0]


def set_entries_for(sock: Socket) -> list[SetEntry]:
    """Fallback set entries for one socket, matching what `selectors_for` matches: a flow entry
    (local, proto:port, remote) for a connected socket, both ways, except UDP going out, which
    is matched by its local port only ("send": sendto() picks peers and sources per datagram);
    a port entry (local or any address, proto:port) for a listener, both ways for TCP, and for
    bound UDP coming in, with a send entry for what it sends. A flow entry has no remote port
    (no ipset type holds two), so it is a little wider than the 5-tuple; a connected socket with
    no local address (sock_diag never reports one) falls back to a port entry."""
    out: list[SetEntry] = []
    connected = sock.remote_port != 0 and sock.remote_addr not in _WILDCARDS
    if connected:
        fam, remote = _ip(sock.remote_addr)
        if sock.proto == "udp":
            out.append(SetEntry(fam, "send", "udp", sock.local_port))
        if sock.local_addr in _WILDCARDS:
            out.append(SetEntry(fam, "port", sock.proto, sock.local_port))
        else:
            out.append(SetEntry(fam, "flow", sock.proto, sock.local_port, _ip(sock.local_addr)[1], remote))
        return out
    if sock.local_port == 0 or (sock.proto == "tcp" and sock.state != "LISTEN"):
        return out
    for fam in _families(sock):
        local = None if sock.local_addr in _WILDCARDS else _ip(sock.local_addr)[1]
        out.append(SetEntry(fam, "port", sock.proto, sock.local_port, local))
        if sock.proto == "udp":
            out.append(SetEntry(fam, "send", "udp", sock.local_port))
    return out


def set_entries_for_all(sockets: Iterable[Socket]) -> tuple[SetEntry, ...]:
    entries: dict[SetEntry, None] = {}
    for sock in sockets:
        entries.update(dict.fromkeys(set_entries_for(sock)))
    return tuple(entries)
