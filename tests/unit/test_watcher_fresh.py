"""`list` trusts the watcher's last reconciliation only when it is recent, succeeded, and
nothing wrote the state file after it began."""

from __future__ import annotations

import os
import time
from pathlib import Path

from netjail.backends.jails import watcher
from netjail.backends.system import identity


def as_if_we_were_the_watcher(state_dir: Path) -> None:
    me = identity.read_stat(os.getpid())
    assert me is not None
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "watcher.pid").write_text(f"{me.pid} {me.start_time}\n")


def tick(state_dir: Path, at: float) -> None:
    (state_dir / "watcher.tick").touch()
    os.utime(state_dir / "watcher.tick", (at, at))


def test_fresh_only_after_a_recent_tick_that_began_after_the_last_state_write(tmp_path: Path) -> None:
    d = tmp_path / "state"
    as_if_we_were_the_watcher(d)
    state = d / "state.json"
    state.write_text("{}")
    written = state.stat().st_mtime
    assert not watcher.reconciled_within(d, 3.0)  # no tick yet
    tick(d, written - 0.5)
    assert not watcher.reconciled_within(d, 3.0)  # the tick began before the state was written
    now = time.time()
    os.utime(state, (now - 1, now - 1))
    tick(d, now - 0.5)
    assert watcher.reconciled_within(d, 3.0)
    tick(d, now - 10)
    os.utime(state, (now - 20, now - 20))
    assert not watcher.reconciled_within(d, 3.0)  # too old
    tick(d, now - 0.5)
    (d / "watcher.pid").write_text("999999999 1\n")
    assert not watcher.reconciled_within(d, 3.0)  # no watcher runs
