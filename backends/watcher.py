"""The watcher: while jails exist, one background process re-runs reconciliation every second,
so sockets a cgroup rule cannot see (listeners opened inside the jail, DESIGN.md fact 2) get
covered and a re-created cgroup gets its rule reloaded. It exits when no jail is left.

Started by `block` (`python -m netjail.backends.watcher`), one per state directory, in the
network namespace of the netjail that started it (the rules live there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from netjail.backends import identity

INTERVAL_ENV = "NETJAIL_WATCH_INTERVAL"


def _pidfile(state_dir: Path) -> Path:
    return state_dir / "watcher.pid"


def running(state_dir: Path) -> int | None:
    """The watcher's PID when one runs for this state directory."""
    try:
        pid_text, start_text = _pidfile(state_dir).read_text().split()
        pid, start = int(pid_text), int(start_text)
    except (OSError, ValueError):
        return None
    stat = identity.read_stat(pid)
    alive = stat is not None and stat.start_time == start and stat.state not in ("Z", "X")
    return pid if alive else None


def _tickfile(state_dir: Path) -> Path:
    return state_dir / "watcher.tick"


def reconciled_within(state_dir: Path, seconds: float) -> bool:
    """Whether a live watcher finished a reconciliation without error in the last `seconds`
    and nobody changed the state file since (a block, a crash half-way, a corrupt file)."""
    try:
        tick = _tickfile(state_dir).stat().st_mtime_ns
        state = (state_dir / "state.json").stat().st_mtime_ns
    except OSError:
        return False
    age = time.time() - tick / 1e9
    return 0 <= age <= seconds and state < tick and running(state_dir) is not None


def ensure_running(state_dir: Path) -> None:
    if running(state_dir):
        return
    subprocess.Popen(
        [sys.executable, "-m", "netjail.backends.watcher", str(state_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def stop(state_dir: Path) -> None:
    pid = running(state_dir)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if identity.read_stat(pid) is None or running(state_dir) is None:
            break
        time.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        _pidfile(state_dir).unlink()


def main(state_dir: Path) -> int:
    from netjail.backends.engine import Engine  # the engine imports this module

    me = identity.read_stat(os.getpid())
    if me is None or running(state_dir):
        return 0
    state_dir.mkdir(parents=True, exist_ok=True)
    _pidfile(state_dir).write_text(f"{me.pid} {me.start_time}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    engine = Engine(state_dir, spawn_watcher=False)
    interval = float(os.environ.get(INTERVAL_ENV, "1.0"))
    log = state_dir / "watcher.log"
    while running(state_dir) == me.pid:
        time.sleep(interval)
        started = time.time()
        try:
            notes = engine.reconcile()
            # heartbeat, dated when this reconciliation began: a state file written after that
            # (by anyone, this tick included) is newer and makes `list` reconcile itself
            with contextlib.suppress(OSError):
                _tickfile(state_dir).touch()
                os.utime(_tickfile(state_dir), (started, started))
        except Exception as exc:  # keep watching: a failed tick is retried on the next one
            notes = [f"error: {exc}"]
        if notes:
            with log.open("a") as f:
                f.writelines(f"{time.strftime('%F %T')} {n}\n" for n in notes)
        # decide to leave under the lock: a block starting now either sees this watcher gone
        # (and starts another) or is seen by it
        with engine.store.locked():
            if not engine.store.load().jails:
                with contextlib.suppress(OSError):
                    if running(state_dir) == me.pid:
                        _pidfile(state_dir).unlink()
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
