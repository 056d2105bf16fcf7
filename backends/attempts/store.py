"""The attempts log: SQLite (WAL) in the state directory, bounded, surviving restarts.

Two tables: `attempts` aggregates per jail, direction, protocol, remote and port (what the
table shows), `events` keeps a ring of the most recent packets, counted per read (what
`--follow` streams), and `names` the DNS questions. A collector writes one transaction per
batch, never one per packet. Bounds: at most ROWS_PER_JAIL aggregate rows per jail (the least
recently seen go first), EVENTS ring rows, and MAX_BYTES of file (oldest first);
docs/attempts.md.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from netjail.backends.attempts.batch import Batch
from netjail.backends.attempts.decode import Attempt
from netjail.backends.errors import NetjailError
from netjail.backends.jails.state import open_checked_dir

FILENAME = "attempts.sqlite"
ROWS_PER_JAIL = 4096
EVENTS = 10_000
MAX_BYTES = 32 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    jail TEXT NOT NULL, direction TEXT NOT NULL, proto TEXT NOT NULL, remote TEXT NOT NULL,
    port INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT,
    count INTEGER NOT NULL, bytes INTEGER NOT NULL, first REAL NOT NULL, last REAL NOT NULL,
    uid INTEGER, pid INTEGER, pid_from TEXT, name_from TEXT,
    PRIMARY KEY (jail, direction, proto, remote, port, kind)
);
CREATE INDEX IF NOT EXISTS attempts_last ON attempts (jail, last);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, jail TEXT NOT NULL, direction TEXT NOT NULL,
    proto TEXT NOT NULL, remote TEXT NOT NULL, port INTEGER NOT NULL, kind TEXT NOT NULL,
    name TEXT, length INTEGER NOT NULL, uid INTEGER, count INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS kept (jail TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS resolved (
    jail TEXT NOT NULL, address TEXT NOT NULL, name TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (jail, address)
);
CREATE TABLE IF NOT EXISTS gone (jail TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS names (
    jail TEXT NOT NULL, name TEXT NOT NULL, qtype TEXT NOT NULL,
    count INTEGER NOT NULL, first REAL NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (jail, name, qtype)
);
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """One dropped packet, attributed: what the collector hands the log."""

    jail: str
    at: float
    uid: int | None
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class AttemptRow:
    jail: str
    direction: str
    proto: str
    remote: str
    port: int
    kind: str
    name: str | None  # the DNS name this jail asked for that remote, when one is known
    count: int
    bytes: int
    first: float
    last: float
    uid: int | None
    pid: int | None = None  # the member that sent it, when the kernel's facts say (attribute.py)
    pid_from: str | None = None  # "only member", "uid" or "socket"
    name_from: str | None = None  # "query" (it asked for that name), "answer" (an answer mapped it)


@dataclass(frozen=True, slots=True)
class NameRow:
    jail: str
    name: str
    qtype: str
    count: int
    first: float
    last: float


class AttemptLog:
    """One connection to the log. `create=False` opens only an existing log (readers: `attempts`
    before any collector ran gets an empty answer, and no file is made)."""

    def __init__(
        self,
        directory: Path,
        *,
        create: bool = True,
        max_bytes: int = MAX_BYTES,
        events: int = EVENTS,
        rows_per_jail: int = ROWS_PER_JAIL,
        bound_seconds: float = 0.0,
    ) -> None:
        """`bound_seconds`: the bounds are enforced by a write at most that often (the
        collector's: a write is then a few statements, most of its cost was the bounds' ones);
        between, the log exceeds them by at most that many seconds of writes."""
        self.max_bytes, self.events, self.rows_per_jail = max_bytes, events, rows_per_jail
        self.bound_seconds = bound_seconds
        self._bounded = 0.0  # monotonic time of the last bounding
        self._unbounded: set[str] = set()  # jails written since
        self._dfd = open_checked_dir(directory, create=create)
        self.db: sqlite3.Connection | None = None
        if self._dfd is None:
            return
        try:
            # The file is made (or found) by descriptor, without following a symlink; SQLite
            # then opens it through the pinned directory, so nothing can swap the path between.
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
            try:
                os.close(os.open(FILENAME, flags, 0o600, dir_fd=self._dfd))
            except FileNotFoundError:
                return
            path = f"/proc/self/fd/{self._dfd}/{FILENAME}"
            self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if create:
                self.db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")  # all tables, or none
                # a log an older netjail made: one event row a packet, no PIDs
                if not self._has("events", "count"):
                    self.db.execute("ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
                if not self._has("attempts", "pid"):
                    self.db.execute("ALTER TABLE attempts ADD COLUMN pid INTEGER")
                    self.db.execute("ALTER TABLE attempts ADD COLUMN pid_from TEXT")
                if not self._has("attempts", "name_from"):
                    self.db.execute("ALTER TABLE attempts ADD COLUMN name_from TEXT")
            elif not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'kept'").fetchone():
                # a collector made the file and has not written its schema yet: no log so far
                self.db.close()
                self.db = None
        except BaseException:
            self.close()
            raise

    def _has(self, table: str, column: str) -> bool:
        assert self.db is not None
        return any(row[1] == column for row in self.db.execute(f"PRAGMA table_info({table})"))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._dfd is not None:
            os.close(self._dfd)
            self._dfd = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        assert self.db is not None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def record(self, seen: Iterable[Seen]) -> int:
        """Packets one by one (tests, small callers): aggregated, then written as one batch."""
        batch = Batch()
        for s in seen:
            batch.add(s.jail, s.at, s.uid, s.attempt)
        return self.write(batch)

    def write(self, batch: Batch) -> int:
        """One transaction for the whole batch; returns the packets it held."""
        if self.db is None or not batch.packets:
            return 0
        with self._transaction() as db:
            # a jail forgotten since these packets were dropped: the collector's batch in hand
            # must not bring its rows back (a later jail of that name drops later packets)
            gone = dict(db.execute("SELECT jail, at FROM gone").fetchall())
            if gone:
                batch.drop_before(gone)
                db.execute("DELETE FROM gone WHERE at < ?", (time.time() - 60,))
            db.executemany(
                "INSERT INTO names VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                " count = count + excluded.count, last = max(last, excluded.last)",
                [(j, n, q, int(c), f, la) for (j, n, q), (c, f, la) in batch.names.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO resolved VALUES (?, ?, ?, ?)",
                [(j, address, name, at) for (j, address), (name, at) in batch.resolved.items()],
            )
            # a row's name: the question of a DNS query (port 53), else the name an answer this
            # jail received mapped its remote to, the latest one netjail saw (docs/attempts.md)
            answered = "(SELECT name FROM resolved WHERE jail = ?1 AND address = ?4)"
            db.executemany(
                "INSERT INTO attempts VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
                f" coalesce(?7, {answered}), ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
                f" CASE WHEN ?7 IS NOT NULL THEN 'query' WHEN {answered} IS NOT NULL THEN 'answer' END)"
                " ON CONFLICT DO UPDATE SET count = count + excluded.count,"
                " bytes = bytes + excluded.bytes, last = max(last, excluded.last),"
                " uid = coalesce(excluded.uid, uid),"
                " name_from = CASE WHEN name_from = 'query' THEN name_from"
                " ELSE coalesce(excluded.name_from, name_from) END,"
                " name = CASE WHEN name_from = 'query' THEN name ELSE coalesce(excluded.name, name) END,"
                " pid_from = CASE WHEN pid IS NULL THEN excluded.pid_from ELSE pid_from END,"
                " pid = coalesce(pid, excluded.pid)",  # the first sender attributed
                [
                    (*key[:6], r.name, r.count, r.bytes, r.first, r.last, r.uid, r.pid, r.pid_from)
                    for key, r in batch.rows.items()
                ],
            )
            db.executemany(
                "INSERT INTO events (at, jail, direction, proto, remote, port, kind, name, length,"
                " uid, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        at,
                        jail,
                        a.direction,
                        a.proto,
                        a.remote,
                        a.port,
                        a.kind,
                        a.dns[0][0] if a.dns else None,
                        a.length,
                        uid,
                        n,
                    )
                    for at, jail, uid, a, n in batch.events
                ],
            )
            self._unbounded.update({key[0] for key in batch.rows} | {key[0] for key in batch.resolved})
            if time.monotonic() - self._bounded >= self.bound_seconds:
                self._bound(db, self._unbounded)
                self._unbounded = set()
                self._bounded = time.monotonic()
        return batch.packets

    def _bound(self, db: sqlite3.Connection, jails: set[str]) -> None:
        db.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (self.events,))
        for jail in jails:
            db.execute(
                "DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts WHERE jail = ?"
                " ORDER BY last DESC LIMIT -1 OFFSET ?)",
                (jail, self.rows_per_jail),
            )
            db.execute(
                "DELETE FROM names WHERE rowid IN (SELECT rowid FROM names WHERE jail = ?"
                " ORDER BY last DESC LIMIT -1 OFFSET ?)",
                (jail, self.rows_per_jail),
            )
            db.execute(
                "DELETE FROM resolved WHERE rowid IN (SELECT rowid FROM resolved WHERE jail = ?"
                " ORDER BY at DESC LIMIT -1 OFFSET ?)",
                (jail, self.rows_per_jail),
            )
        page = db.execute("PRAGMA page_size").fetchone()[0]
        used = (
            db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        ) * page
        if used > self.max_bytes:
            # oldest first, a tenth of each table at a time, until the pages in use fit
            db.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id"
                " LIMIT (SELECT count(*) / 10 + 1 FROM events))"
            )
            db.execute(
                "DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts"
                " ORDER BY last LIMIT (SELECT count(*) / 10 + 1 FROM attempts))"
            )

    def attempts(
        self, *, jail: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[AttemptRow]:
        """Most attempted first."""
        if self.db is None:
            return []
        rows = self.db.execute(
            "SELECT jail, direction, proto, remote, port, kind, name, count, bytes, first, last,"
            " uid, pid, pid_from, name_from FROM attempts"
            " WHERE (?1 IS NULL OR jail = ?1) AND (?2 IS NULL OR last >= ?2)"
            " ORDER BY count DESC, last DESC LIMIT ?3",
            (jail, since, limit),
        ).fetchall()
        return [AttemptRow(*row) for row in rows]

    def names(self, *, jail: str | None = None, since: float | None = None) -> list[NameRow]:
        if self.db is None:
            return []
        rows = self.db.execute(
            "SELECT jail, name, qtype, count, first, last FROM names WHERE (?1 IS NULL OR"
            " jail = ?1) AND (?2 IS NULL OR last >= ?2) ORDER BY count DESC, last DESC",
            (jail, since),
        ).fetchall()
        return [NameRow(*row) for row in rows]

    def events_after(
        self, last_id: int, *, jail: str | None = None, limit: int = 1000
    ) -> list[tuple[int, AttemptRow]]:
        """Raw events with an id above `last_id`, oldest first (what `--follow` prints): each is
        one attempt's copies in one read of the kernel's, `count` of them."""
        if self.db is None:
            return []
        count = "count" if self._has("events", "count") else "1"  # a log no collector updated yet
        rows = self.db.execute(
            f"SELECT id, jail, direction, proto, remote, port, kind, name, {count}, {count} * length,"
            " at, at, uid FROM events WHERE id > ?1 AND (?2 IS NULL OR jail = ?2) ORDER BY id LIMIT ?3",
            (last_id, jail, limit),
        ).fetchall()
        return [(row[0], AttemptRow(*row[1:])) for row in rows]

    def last_event(self) -> int:
        if self.db is None:
            return 0
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def keep(self, jail: str) -> None:
        """`unblock --keep-log`: the jail's rows outlive it (until `attempts --forget`)."""
        if self.db is not None:
            self.db.execute("INSERT OR IGNORE INTO kept VALUES (?)", (jail,))

    def forget(self, jail: str, *, kept_too: bool = False) -> bool:
        """A released jail's rows go with it, unless the user kept its log. True: forgotten."""
        if self.db is None:
            return False
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM kept WHERE jail = ?", (jail,)).fetchone() and not kept_too:
                return False
            for table in ("attempts", "events", "names", "kept", "resolved"):
                db.execute(f"DELETE FROM {table} WHERE jail = ?", (jail,))
            db.execute("INSERT OR REPLACE INTO gone VALUES (?, ?)", (jail, time.time()))
        return True


def forget_jail(directory: Path, jail: str) -> list[str]:
    """For a jail being removed: its rows go. A log that cannot be opened never stops a removal;
    the note says so."""
    try:
        log = AttemptLog(directory, create=False)
    except (OSError, sqlite3.Error, NetjailError) as exc:
        return [f"attempts log: jail {jail!r} not forgotten: {exc}"]
    try:
        log.forget(jail)
    except sqlite3.Error as exc:
        return [f"attempts log: jail {jail!r} not forgotten: {exc}"]
    finally:
        log.close()
    return []
