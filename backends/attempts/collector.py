"""The collector: one per network namespace, inside the watcher (the process netjail already
runs while jails exist). It holds the jails' NFLOG group, decodes each copy and writes the log
in batches.

What reaches it is bounded by the kernel, not by how fast a jailed program sends: every jail
chain's log rule has its own rate limit and copies only the headers (prefix.py), and a batch is
one netlink read and one SQLite transaction.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from netjail.backends.attempts import prefix
from netjail.backends.attempts.decode import decode
from netjail.backends.attempts.nflog import NflogGroup
from netjail.backends.attempts.store import AttemptLog, Seen

FLUSH_SECONDS = 0.25
MAX_PENDING = 20_000  # more than any rate limit lets through between flushes


class Collector:
    def __init__(self, directory: Path, *, group: int | None = None) -> None:
        self.group = prefix.group() if group is None else group
        self.reader = NflogGroup(self.group, snaplen=prefix.SNAPLEN)
        self.log = AttemptLog(directory)
        self.recorded = 0
        self.skipped = 0  # copies that were not ours (another prefix) or cut before the IP header

    def run(self, stop: threading.Event) -> None:
        pending: list[Seen] = []
        flushed = time.monotonic()
        fd = self.reader.fileno()
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], FLUSH_SECONDS)
            if ready:
                self._take(pending)
            if pending and (time.monotonic() - flushed >= FLUSH_SECONDS or not ready):
                self.recorded += self.log.record(pending)
                pending.clear()
                flushed = time.monotonic()
        if pending:
            self.recorded += self.log.record(pending)

    def _take(self, pending: list[Seen]) -> None:
        wall = time.time()
        for packet in self.reader.read():
            lane = prefix.parse(packet.prefix)
            attempt = decode(packet.family, packet.payload, lane[0]) if lane else None
            if lane is None or attempt is None or len(pending) >= MAX_PENDING:
                self.skipped += 1
                continue
            at = packet.timestamp if packet.timestamp else wall
            pending.append(Seen(lane[1], at, packet.uid, attempt))

    def close(self) -> None:
        self.reader.close()
        self.log.close()


def start(directory: Path) -> tuple[threading.Event, threading.Thread] | None:
    """The collector on a daemon thread, or None when this kernel or namespace cannot give it
    the group (no NFLOG, another holder): jails still block, they only go unlogged."""
    try:
        collector = Collector(directory)
    except OSError as exc:
        os.write(2, f"netjail watcher: attempts log off: {exc}\n".encode())
        return None
    stop = threading.Event()

    def body() -> None:
        try:
            collector.run(stop)
        finally:
            collector.close()

    thread = threading.Thread(target=body, name="attempts-collector", daemon=True)
    thread.start()
    return stop, thread
