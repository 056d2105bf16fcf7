"""The watcher: while jails exist, one background process re-runs reconciliation every second,
so sockets a cgroup rule cannot see (listeners opened inside the jail, docs/kernel-facts.md #2) get
covered and a re-created cgroup gets its rule reloaded. It exits when no jail is left.

Started by `block` (`python -I -m netjail.backends.jails.watcher`, from "/" with a sanitized
environment: see hardening), one per state directory, in the network namespace of the netjail
that started it (the rules live there).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from netjail.backends import hardening
from netjail.backends.errors import NetjailError
from netjail.backends.jails.state import Store
from netjail.backends.system import identity

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netjail.backends.engine import Engine

INTERVAL_ENV = "NETJAIL_WATCH_INTERVAL"


PIDFILE = "watcher.pid"
LOG = "watcher.log"


def running(state_dir: Path) -> int | None:
    """The watcher's PID when one runs for this state directory."""
    try:
        text = Store(state_dir).read_text(PIDFILE)
        pid_text, start_text = (text or "").split()
        pid, start = int(pid_text), int(start_text)
    except (NetjailError, ValueError):
        return None
    stat = identity.read_stat(pid)
    alive = stat is not None and stat.start_time == start and stat.state not in ("Z", "X")
    return pid if alive else None


TICKFILE = "watcher.tick"


def _tickfile(state_dir: Path) -> Path:
    return state_dir / TICKFILE


def reconciled_within(state_dir: Path, seconds: float) -> bool:
    """Whether a live watcher finished a reconciliation without error in the last `seconds`
    and nobody changed the state file since (a block, a crash half-way, a corrupt file)."""
    try:
        tick = os.stat(_tickfile(state_dir), follow_symlinks=False).st_mtime_ns
        state = os.stat(state_dir / "state.json", follow_symlinks=False).st_mtime_ns
    except OSError:
        return False
    age = time.time() - tick / 1e9
    return 0 <= age <= seconds and state < tick and running(state_dir) is not None


def ensure_running(state_dir: Path) -> None:
    if running(state_dir):
        return
    import subprocess  # here, not at the top: see stop()

    subprocess.Popen(
        hardening.helper_command("netjail.backends.jails.watcher", str(state_dir.absolute())),
        cwd="/",
        env=hardening.helper_environ(),
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
    # signal and subprocess are imported where used: `list` only asks whether a pass is
    # fresh, and importing them (signal.py builds enums) was ~3.5 ms of it
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if identity.read_stat(pid) is None or running(state_dir) is None:
            break
        time.sleep(0.02)
    with contextlib.suppress(NetjailError):
        Store(state_dir).unlink(PIDFILE)


def main(state_dir: Path) -> int:
    from netjail.backends.engine import Engine  # the engine imports this module

    me = identity.read_stat(os.getpid())
    if me is None or running(state_dir):
        return 0
    engine = Engine(state_dir, spawn_watcher=False)
    try:
        engine.store.write_text(PIDFILE, f"{me.pid} {me.start_time}\n")
    except NetjailError:
        return 3  # an unsafe state directory: the command that started us said so already
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from netjail.backends.attempts import collector  # what jails drop, logged (docs/attempts.md)

    collecting = collector.start(state_dir)
    try:
        _watch(engine, state_dir, me.pid)
    finally:
        collecting[0].set()  # the batch in hand is written before the watcher goes
        collecting[1].join(timeout=2.0)
    return 0


def _watch(engine: Engine, state_dir: Path, me: int) -> None:
    interval = float(os.environ.get(INTERVAL_ENV, "1.0"))
    while running(state_dir) == me:
        time.sleep(interval)
        started = time.time()
        try:
            notes = engine.reconcile()
            # heartbeat, dated when this reconciliation began: a state file written after that
            # (by anyone, this tick included) is newer and makes `list` reconcile itself
            with contextlib.suppress(OSError, NetjailError):
                engine.store.write_text(TICKFILE, "")  # no-follow, like every state file
                os.utime(_tickfile(state_dir), (started, started), follow_symlinks=False)
        except Exception as exc:  # keep watching: a failed tick is retried on the next one
            notes = [f"error: {exc}"]
        if notes:
            with contextlib.suppress(NetjailError):
                engine.store.append_text(LOG, "".join(f"{time.strftime('%F %T')} {n}\n" for n in notes))
        # decide to leave under the lock: a block starting now either sees this watcher gone
        # (and starts another) or is seen by it
        with engine.store.locked():
            if not engine.store.load().jails:
                with contextlib.suppress(NetjailError):
                    if running(state_dir) == me:
                        engine.store.unlink(PIDFILE)
                break


if __name__ == "__main__":
    hardening.harden()
    raise SystemExit(main(Path(sys.argv[1])))
