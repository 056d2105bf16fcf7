"""Dropped-packet rates per jail from successive counter reads, kept for the sparklines."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from netjail.backends.model import JailCounters

HISTORY_SECONDS = 120.0  # the sparkline's window


@dataclass
class _Series:
    last_at: float
    last_packets: int
    rates: deque[float]
    rate: float | None = None


@dataclass
class CounterHistory:
    """Feed it every counters read with the monotonic time it was taken."""

    interval: float
    _series: dict[str, _Series] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return max(30, min(1200, round(HISTORY_SECONDS / max(self.interval, 0.05))))

    def record(self, counters: Iterable[JailCounters], at: float) -> None:
        seen: set[str] = set()
        for c in counters:
            seen.add(c.jail)
            packets = c.total.dropped_packets
            series = self._series.get(c.jail)
            if series is None:
                self._series[c.jail] = _Series(at, packets, deque(maxlen=self.capacity))
                continue
            elapsed = at - series.last_at
            if elapsed <= 0:
                continue
            # A counter that went down was reset (jail rebuilt): start again from its value.
            series.rate = max(packets - series.last_packets, 0) / elapsed
            series.rates.append(series.rate)
            series.last_at, series.last_packets = at, packets
        for gone in set(self._series) - seen:
            del self._series[gone]

    def rate(self, jail: str) -> float | None:
        series = self._series.get(jail)
        return series.rate if series else None

    def rates(self, jail: str) -> tuple[float, ...]:
        """The whole window, oldest first, zero-padded: the sparkline's time axis stays fixed."""
        series = self._series.get(jail)
        recorded = tuple(series.rates) if series else ()
        return (0.0,) * (self.capacity - len(recorded)) + recorded
