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
import struct
import threading
import time
from pathlib import Path

from netjail.backends.attempts import prefix
from netjail.backends.attempts.batch import Batch
from netjail.backends.attempts.decode import CachedDecoder
from netjail.backends.attempts.nflog import NflogGroup
from netjail.backends.attempts.store import AttemptLog

FLUSH_SECONDS = 0.5  # the latency bound (a row within ~0.6 s) against one transaction a flush
MAX_PENDING = 20_000  # more than any rate limit lets through between flushes


class Collector:
    def __init__(self, directory: Path, *, group: int | None = None) -> None:
        self.group = prefix.group() if group is None else group
        self.reader = NflogGroup(self.group, snaplen=prefix.SNAPLEN)
        self.log = AttemptLog(directory)
        self.recorded = 0
        self.sampled_out = 0
        self.last_error = ""  # packets counted in the rows but not kept as raw events
        self._lanes: dict[str, tuple[str, str]] = {}
        self._decode = CachedDecoder()
        self.skipped = 0  # copies that were not ours (another prefix) or cut before the IP header

    def run(self, stop: threading.Event) -> None:
        batch = Batch()
        flushed = time.monotonic()
        fd = self.reader.fileno()
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], FLUSH_SECONDS)
            if ready:
                try:
                    self._take(batch)
                except (ValueError, IndexError, UnicodeError, struct.error) as exc:
                    # bytes a jailed program wrote, in a shape decode did not foresee: that
                    # batch is lost, the log goes on (the watcher's reconciliation never stops)
                    self.skipped += 1
                    self.last_error = repr(exc)
            if batch.packets and (time.monotonic() - flushed >= FLUSH_SECONDS or not ready):
                self._write(batch)
                batch = Batch()
                flushed = time.monotonic()
        self._write(batch)

    def _write(self, batch: Batch) -> None:
        self.recorded += self.log.write(batch)
        self.sampled_out += batch.sampled_out

    def _take(self, batch: Batch) -> None:
        wall = time.time()
        lanes = self._lanes
        for packet in self.reader.read_all():
            lane = lanes.get(packet.prefix)
            if lane is None:
                lane = lanes[packet.prefix] = prefix.parse(packet.prefix) or ("", "")
                if len(lanes) > 4096:  # prefixes come from our rules; a bound all the same
                    lanes.clear()
            attempt = self._decode(packet.family, packet.payload, lane[0]) if lane[1] else None
            if attempt is None or batch.packets >= MAX_PENDING:
                self.skipped += 1
                continue
            batch.add(lane[1], packet.timestamp or wall, packet.uid, attempt)

    def close(self) -> None:
        self.reader.close()
        self.log.close()


RETRY_SECONDS = 1.0


def start(directory: Path) -> tuple[threading.Event, threading.Thread]:
    """The collector on a daemon thread. While the group cannot be had (held by the watcher of
    another state directory in this namespace, or one still exiting; no NFLOG here) it asks
    again every RETRY_SECONDS: jails block meanwhile, they only go unlogged."""
    stop = threading.Event()

    def body() -> None:
        said = False
        while not stop.is_set():
            try:
                collector = Collector(directory)
            except OSError as exc:
                if not said:  # once: the watcher's stderr is its log
                    os.write(2, f"netjail watcher: attempts log waiting: {exc}\n".encode())
                    said = True
                stop.wait(RETRY_SECONDS)
                continue
            try:
                collector.run(stop)
            finally:
                collector.close()
            return

    thread = threading.Thread(target=body, name="attempts-collector", daemon=True)
    thread.start()
    return stop, thread
