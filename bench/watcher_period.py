"""What one watcher period (Engine.reconcile) costs with a cgroup-jailed member holding many
sockets, total sockets in the namespace held by other processes around it.

    python bench/watcher_period.py [--total 5000] [--member 1000] [--runs 15]

Prints medians (wall ms): a steady period (every socket's cgroup id already known) and, where
the engine has it, a period that must dump the socket tables again (a member that keeps
receiving or opening sockets), plus the bare sock_diag cgroup-id dump.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inventory import hold, holders
from private_netns import ensure_private_netns


def median_ms(fn: Callable[[], object], runs: int) -> str:
    """Median wall and CPU ms: on a busy machine the CPU time is the steadier figure."""
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return f"{statistics.median(wall):.1f} ms wall, {statistics.median(cpu):.1f} ms CPU"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=5000)
    ap.add_argument("--member", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--hold", type=int)
    args = ap.parse_args()
    if args.hold is not None:
        hold(args.hold)
        return 0
    ensure_private_netns([os.path.abspath(__file__), *sys.argv[1:]])
    os.environ.setdefault("NETJAIL_CGROUP_PARENT", f"netjail-bench-{os.getpid()}")
    from netjail.backends.engine import Engine
    from netjail.backends.model import BlockRequest

    with (
        tempfile.TemporaryDirectory() as state,
        holders(args.total - args.member, 20) as _others,
        holders(args.member, 1) as [member],
    ):
        engine = Engine(Path(state), spawn_watcher=False)
        engine.block(BlockRequest(member, jail="bench"))
        try:
            engine.reconcile()
            steady = median_ms(engine.reconcile, args.runs)
            print(f"{args.total} sockets, member holds {args.member}: period {steady}")
            try:
                from netjail.backends.jails import socket_cgroups
                from netjail.backends.system import sockdiag
            except ImportError:
                return 0

            from netjail.backends.jails import reconcile

            rec = engine._reconciler()
            procs = rec.processes(fresh=True)
            jail = engine.store.load().jails["bench"]
            inventory_view = median_ms(lambda: reconcile._sockets_of(jail, procs), args.runs)
            fresh_view = median_ms(lambda: rec._unseen(jail, rec._held_sockets(jail, procs)), args.runs)
            print(f"  member's sockets from the inventory (before): {inventory_view}")
            print(f"  fresh fd read + cgroup check, ids known (after): {fresh_view}")

            def cold() -> None:
                socket_cgroups.SHARED.retain(())
                engine.reconcile()

            print(f"  period with a table dump: {median_ms(cold, args.runs)}")
            tables = [(2, "tcp"), (10, "tcp"), (2, "udp"), (10, "udp")]

            def dump() -> None:
                with sockdiag.open_socket() as nl:
                    sockdiag.cgroup_ids(nl, tables)

            print(f"  bare cgroup-id dump, 4 tables: {median_ms(dump, args.runs)}")
        finally:
            engine.reset()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
