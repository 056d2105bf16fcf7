"""What a collector gathers between two writes: packets aggregated in memory (pure).

A flood of copies of the same attempt becomes one row update per write, not one per packet;
the raw-event ring gets at most MAX_EVENTS entries of a batch, each one attempt's copies of one
netlink read with their count (the first ones: a new destination is seen at once, a flood is
sampled), and `sampled_out` says how many packets were left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netjail.backends.attempts.decode import Attempt

MAX_EVENTS = 256
MAX_ROWS = 20_000  # destinations a batch holds: far more than a flush period's worth of new ones
GONE_GRACE = 2.0  # seconds

Key = tuple[str, str, str, str, int, str]  # jail, direction, proto, remote, port, kind


@dataclass(slots=True)
class Aggregate:
    count: int
    bytes: int
    first: float
    last: float
    uid: int | None
    name: str | None
    local: tuple[str, int] | None = None  # the first packet's jailed address and port
    pid: int | None = None  # attribute.py
    pid_from: str | None = None


@dataclass(slots=True)
class Batch:
    rows: dict[Key, Aggregate] = field(default_factory=dict)
    names: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)  # [count, first, last]
    events: list[tuple[float, str, int | None, Attempt, int]] = field(default_factory=list)
    # (jail, address) -> (name, when): what DNS answers to the jail mapped (decode.dns_answers)
    resolved: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    packets: int = 0
    sampled_out: int = 0

    @property
    def full(self) -> bool:
        """Memory is per destination, not per packet: a flood of one destination never fills it."""
        return len(self.rows) >= MAX_ROWS

    def add(self, jail: str, at: float, uid: int | None, a: Attempt, n: int = 1) -> None:
        """`n` copies of one attempt."""
        self.packets += n
        for address, resolved in a.answers:
            self.resolved[(jail, address)] = (resolved, at)
        if a.direction == "answer":
            return  # an allowed answer's copy: it names later attempts, it is none itself
        key = (jail, a.direction, a.proto, a.remote, a.port, a.kind)
        row = self.rows.get(key)
        name = a.dns[0][0] if a.dns else None
        if row is None:
            self.rows[key] = Aggregate(
                n, n * a.length, at, at, uid, name, (a.local, a.lport) if a.local else None
            )
        else:
            row.count += n
            row.bytes += n * a.length
            row.last = max(row.last, at)
            row.first = min(row.first, at)
            if uid is not None:
                row.uid = uid
            if name is not None:
                row.name = name
        for qname, qtype in a.dns:
            seen = self.names.get((jail, qname, qtype))
            if seen is None:
                self.names[(jail, qname, qtype)] = [n, at, at]
            else:
                seen[0] += n
                seen[2] = max(seen[2], at)
        if len(self.events) < MAX_EVENTS:
            self.events.append((at, jail, uid, a, n))
        else:
            self.sampled_out += n

    def drop_before(self, gone: dict[str, float]) -> None:
        """Leave out what jails in `gone` dropped up to the time each was forgotten. A copy the
        kernel did not stamp (outgoing packets) is dated when it was read, up to a flush period
        later: GONE_GRACE covers that (a jail made again under the name that soon loses its
        first seconds of log)."""

        def old(jail: str, at: float) -> bool:
            return jail in gone and at <= gone[jail] + GONE_GRACE

        self.rows = {k: r for k, r in self.rows.items() if not old(k[0], r.first)}
        self.names = {k: v for k, v in self.names.items() if not old(k[0], v[1])}
        self.events = [e for e in self.events if not old(e[1], e[0])]
        self.resolved = {k: v for k, v in self.resolved.items() if not old(k[0], v[1])}

    def __len__(self) -> int:
        return self.packets
