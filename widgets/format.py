"""Pure text formatting shared by the widgets (no Textual imports: unit-tested on plain data)."""

from __future__ import annotations

from netjail.backends.model import Socket

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_count(n: int) -> str:
    """Compact counts for narrow columns: 999, 1.2k, 35k, 4.1M."""
    if n < 1000:
        return str(n)
    for div, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1000, "k")):
        if n >= div:
            value = n / div
            return f"{value:.1f}{suffix}" if value < 10 else f"{int(value)}{suffix}"
    raise AssertionError("unreachable")


def human_rate(per_second: float | None) -> str:
    if per_second is None:
        return "—"
    if per_second < 10:
        return f"{per_second:.1f}/s"
    return f"{human_count(round(per_second))}/s"


def endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# attempts log rows (docs/attempts.md): where, when, and which are new
PORTED = frozenset({"tcp", "udp", "sctp"})  # protocols whose rows carry a port
NEW_ATTEMPT_SECONDS = 10.0  # a destination first tried this recently is highlighted


def attempt_target(remote: str, port: int, proto: str) -> str:
    """`203.0.113.7:443`, `[fd00::1]:53`, or the bare address for ICMP and other protocols."""
    return endpoint(remote, port) if proto in PORTED else remote


def clock(at: float) -> str:
    """A wall-clock time of today's kind, HH:MM:SS, local."""
    import time

    return time.strftime("%H:%M:%S", time.localtime(at))


def is_listening(sock: Socket) -> bool:
    """A TCP listener, or a UDP socket bound to a port and not connected: it can receive."""
    if sock.proto == "tcp":
        return sock.state == "LISTEN"
    return sock.state == "UNCONN" and sock.local_port != 0


def has_remote(sock: Socket) -> bool:
    return sock.remote_port != 0 and sock.state != "LISTEN"


def remote_endpoints(sockets: tuple[Socket, ...]) -> list[str]:
    seen: dict[str, None] = {}
    for s in sockets:
        if has_remote(s):
            seen.setdefault(endpoint(s.remote_addr, s.remote_port), None)
    return list(seen)


def listening_ports(sockets: tuple[Socket, ...]) -> list[str]:
    """`80`, `u53` (udp): sorted, each once."""
    ports = {(s.proto, s.local_port) for s in sockets if is_listening(s)}
    return [
        f"{'u' if proto == 'udp' else ''}{port}" for proto, port in sorted(ports, key=lambda p: (p[1], p[0]))
    ]


def summarise(items: list[str], width: int) -> str:
    """Join items, cut to `width` cells with a `+N` tail telling how many did not fit."""
    if not items:
        return ""
    out = items[0]
    for i, item in enumerate(items[1:], start=1):
        rest = len(items) - i
        candidate = f"{out} {item}"
        tail = f" +{rest - 1}" if rest > 1 else ""
        if len(candidate) + len(tail) > width:
            return f"{out} +{rest}"
        out = candidate
    if len(out) > width:
        return out[: max(width - 1, 0)] + "…"
    return out
