"""Connections waiting in a jailed listener's accept queue: in no fd table, so no marking pass
finds them, and made from the listener before it carried the jail's mark, so they carry none
(a child takes the listener's mark at its SYN: docs/kernel-facts.md #23). Accepted after the
block, what they sent went out until the watcher's next pass marked them (5 of 5 got out).

sock_diag lists them all the same: TCP sockets with the listener's local address and port and
no inode (SYN_RECV ones too: the child they become is unmarked as well). Their 5-tuples go into
the jail's fallback flow set (one set lookup per packet, fallback_sets) until each is accepted
and marked, or closed. Checked only while there can be any: after a pass marked a socket (it
may be a listener with a queue) and while some are left; once its queue is drained of them, a
marked listener's new children carry the mark. A SO_REUSEPORT peer outside the jail shares
the queue's address: what waits in its own queue at that moment is cut too, until it accepts
it (its accepted sockets are not the jail's: dropped from the set at the next pass).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from netjail.backends.firewall.base import SetEntry
from netjail.backends.jails.state import JailState
from netjail.backends.system import sockdiag

_FAMILY: dict[int, str] = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}


def _addr(family: int, raw: bytes) -> tuple[str, str]:
    """(netjail family, address) of a packet's view: a v4-mapped IPv6 address is IPv4."""
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "inet", str(ip.ipv4_mapped)
    return _FAMILY[family], str(ip)


def entries(jail: JailState) -> list[SetEntry]:
    return [SetEntry(fam, "flow", "tcp", port, local, remote) for fam, port, local, remote in jail.queued]


def refresh(jail: JailState, marked_now: bool) -> None:
    """Recompute `jail.queued` from the kernel, after a marking pass (`marked_now`: it marked
    sockets). Costs one dump of the listening hash, and one of established sockets only when a
    marked listener is among them or some were queued."""
    if not jail.mark or not (marked_now or jail.queued):
        return
    try:
        nl = sockdiag.open_socket()
    except sockdiag.Unavailable:
        return  # no sock_diag: the watcher's marking is all there is
    with nl:
        try:
            jail.queued = _queued(jail, nl)
        except sockdiag.Unavailable:
            return


def _queued(jail: JailState, nl: socket.socket) -> list[list[object]]:
    ours = {inode for inode, _ in jail.marks}
    found_listeners = [f for f in sockdiag.flows(nl, sockdiag.LISTEN_STATES) if f.inode in ours]
    listeners = {(f.family, f.local, f.lport) for f in found_listeners}
    was = {(e[0], e[1], e[2], e[3]) for e in jail.queued}
    # a listener's record counts what waits in its accept queue: none waiting, no dump of the
    # established hash (a walk of every socket, 10-30 ms at 4,000 here). A handshake half-way
    # at that moment completes unmarked; the next pass finds it queued.
    if not was and not any(f.queue for f in found_listeners):
        return []
    wildcard = {(fam, port) for fam, local, port in listeners if not any(local)}
    found: dict[tuple[str, int, str, str], None] = {}
    held: set[int] | None = None  # read when needed, after the dump: one accepted since is in it
    # the kernel leaves out every other port and every socket with netjail's bits (a busy
    # server's marked connections: 30-50 ms of records at 2,000)
    ports = {port for _, _, port in listeners} | {e[1] for e in jail.queued}
    bytecode = sockdiag.port_filter(ports, jail.mark_mask)
    for f in sockdiag.flows(nl, sockdiag.QUEUE_STATES, bytecode):
        if f.mark is not None and f.mark & jail.mark_mask == jail.mark:
            continue  # made after the listener's mark, or accepted and marked since
        fam, local = _addr(f.family, f.local)
        key = (fam, f.lport, local, _addr(f.family, f.remote)[1])
        if f.inode == 0:  # queued (or a request socket)
            if (f.family, f.local, f.lport) in listeners or (f.family, f.lport) in wildcard:
                found[key] = None
        elif key in was:  # accepted since: a member's until marked, else no longer the jail's
            if held is None:
                held = held_by(m.pid for m in jail.members)
            if f.inode in held:
                found[key] = None
    return [list(k) for k in found]


def held_by(pids: Iterable[int]) -> set[int]:
    from netjail.backends.jails import socket_cgroups

    out: set[int] = set()
    for pid in pids:
        out.update(socket_cgroups.held_inodes(pid) or ())
    return out
