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
from netjail.backends.attempts.attribute import Attributor
from netjail.backends.attempts.batch import Batch
from netjail.backends.attempts.nflog import NflogGroup
from netjail.backends.attempts.store import AttemptLog
from netjail.backends.attempts.tally import Tally

# A drop reaches the log within the kernel's flush timeout (nflog.TIMEOUT_CS, 0.5 s) plus at
# most FLUSH_SECONDS: a write follows the read that woke the thread unless the last one was
# less than FLUSH_SECONDS ago. At a steady (rate-limited) trickle that is one wake-up and one
# transaction per kernel flush; in a flood, at most 1 / FLUSH_SECONDS transactions a second.
FLUSH_SECONDS = 0.25
IDLE_SECONDS = 1.0
BOUND_SECONDS = 5.0  # the log's bounds (store.py) are enforced this often


class Collector:
    def __init__(self, directory: Path, *, group: int | None = None) -> None:
        self.group = prefix.group() if group is None else group
        self.reader = NflogGroup(self.group, snaplen=prefix.SNAPLEN)
        self.log = AttemptLog(directory, bound_seconds=BOUND_SECONDS)
        self.recorded = 0
        self.sampled_out = 0
        self.last_error = ""
        self.tally = Tally()
        self.attribute = Attributor(directory)
        self.failed = 0  # reads whose bytes decode did not foresee (skipped whole)

    def run(self, stop: threading.Event) -> None:
        batch = Batch()
        flushed = time.monotonic()
        fd = self.reader.fileno()
        while not stop.is_set():
            # a batch in hand is written FLUSH_SECONDS after the last write; with none, the
            # thread sleeps until the kernel sends (or IDLE_SECONDS, to see `stop`)
            due = flushed + FLUSH_SECONDS - time.monotonic() if batch.packets else IDLE_SECONDS
            ready, _, _ = select.select([fd], [], [], max(0.0, due))
            if ready:
                try:
                    self._take(batch)
                except (ValueError, IndexError, UnicodeError, struct.error) as exc:
                    # bytes a jailed program wrote, in a shape decode did not foresee: the rest
                    # of that read is lost, the log goes on (the watcher's reconciliation never
                    # stops)
                    self.failed += 1
                    self.last_error = repr(exc)
            if batch.packets and time.monotonic() - flushed >= FLUSH_SECONDS:
                self._write(batch)
                batch = Batch()
                flushed = time.monotonic()
        self._write(batch)

    def _write(self, batch: Batch) -> None:
        self.attribute(batch)
        self.recorded += self.log.write(batch)
        self.sampled_out += batch.sampled_out

    @property
    def skipped(self) -> int:
        """Copies not ours (another prefix), cut before the IP header, or past a full batch;
        and whole reads whose bytes decode did not foresee."""
        return int(self.tally.skipped + self.failed)

    def _take(self, batch: Batch) -> None:
        # one clock read per wake-up: a copy is dated when it is read, at most the kernel's
        # flush timeout (nflog.TIMEOUT_CS) after the drop
        wall = time.time()
        for data in self.reader.reads():
            self.tally.feed(data, batch, wall)

    def close(self) -> None:
        self.attribute.close()
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
