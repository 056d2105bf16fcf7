"""Inventory cost against `ss -tunap`, measured side by side in one run.

    sudo .venv/bin/python bench/inventory.py [--sizes 500,5000,20000] [--procs 50] [--runs 7]

Spawns --procs helper processes holding N sockets in total (half bound UDP, half TCP: listeners
and established loopback pairs), then times, median of --runs after one warm-up:

  * engine cold snapshot      a new Inventory each time (every process new, every fd scanned)
  * engine warm refresh       the same Inventory again, nothing changed
  * warm, with rates (TUI)    the same with Inventory(traffic=True): TCP dumps carry tcp_info for
                              the send/receive rates (what the TUI pays at 1 Hz)
  * psutil.net_connections()  the system-wide call
  * ss -tunap                 as a whole process, output discarded (the reference)

It needs root and must not run in the machine's own network namespace (it fills loopback with
thousands of sockets): started there, it re-executes itself under `unshare -n` with lo up.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from private_netns import ensure_private_netns

REFERENCE = "ss -tunap (whole process)"
TRAFFIC = "warm, with rates (TUI)"
COLD_TARGET, WARM_TARGET, TARGET_SIZE = 1.0, 0.3, 5000


# ---- safety: a private network namespace --------------------------------------------------


# ---- socket holders -------------------------------------------------------------------------


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))


def hold(count: int) -> None:
    """Child: open `count` sockets, say READY, keep them until stdin closes."""
    raise_nofile(count + 64)
    held: list[socket.socket] = []
    udp = count // 2
    for _ in range(udp):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        held.append(s)
    tcp = count - udp
    listeners = max(1, tcp // 10)
    pairs = (tcp - listeners) // 2
    listeners = tcp - 2 * pairs  # an odd remainder becomes one more listener
    servers = []
    for _ in range(listeners):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(512)
        servers.append(s)
        held.append(s)
    for i in range(pairs):
        server = servers[i % len(servers)]
        c = socket.create_connection(server.getsockname())
        a, _ = server.accept()
        held += (c, a)
    sys.stdout.write(f"READY {len(held)}\n")
    sys.stdout.flush()
    sys.stdin.read()


@contextmanager
def holders(total: int, procs: int) -> Iterator[list[int]]:
    share = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--hold", str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in share
    ]
    try:
        held = 0
        for c in children:
            assert c.stdout is not None
            line = c.stdout.readline().split()
            if not line or line[0] != "READY":
                raise SystemExit(f"socket holder {c.pid} failed to start")
            held += int(line[1])
        if held != total:
            raise SystemExit(f"holders opened {held} sockets, wanted {total}")
        yield [c.pid for c in children]
    finally:
        for c in children:
            c.kill()
        for c in children:
            c.wait()


# ---- measuring ---------------------------------------------------------------------------------


Timing = tuple[float, float]  # (wall ms, CPU ms), medians


def cpu_ms() -> float:
    """CPU time of this process (every thread) plus its waited-for children (ss)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) * 1000


def medians(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, Timing]:
    """Median wall and CPU time of each measure. Runs are interleaved round-robin so a busy
    moment on the machine hits every measure alike; CPU time is shown too because on a shared
    machine it moves far less than wall time."""
    for fn in fns.values():
        fn()  # warm-up: page cache, imports, first-call allocations
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            c, t = cpu_ms(), time.perf_counter()
            fn()
            wall[name].append((time.perf_counter() - t) * 1000)
            cpu[name].append(cpu_ms() - c)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in fns}


def measure(total: int, procs: int, runs: int) -> tuple[dict[str, Timing], float]:
    import psutil
    from netjail.backends.system.inventory import Inventory

    ss = shutil.which("ss") or "ss"
    with holders(total, procs) as pids:
        check = Inventory().snapshot()
        seen = sum(len(p.sockets) for p in check.processes if p.pid in set(pids))
        if seen != total:
            raise SystemExit(f"inventory saw {seen} of {total} held sockets: benchmark invalid")
        warm = Inventory()
        warm.snapshot()
        counting = Inventory(traffic=True)  # the TUI's: tcp_info in the same dumps, for the rates
        counting.snapshot()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before psutil runs
        got = medians(
            {
                REFERENCE: lambda: subprocess.run([ss, "-tunap"], stdout=subprocess.DEVNULL),
                "engine cold snapshot": lambda: Inventory().snapshot(),
                "engine warm refresh": warm.snapshot,
                "engine warm, inet only": lambda: warm.snapshot(all_processes=False),
                TRAFFIC: counting.snapshot,
                "psutil.net_connections()": lambda: psutil.net_connections(kind="inet"),
            },
            runs,
        )
    return got, rss_mb


def report(results: dict[int, tuple[dict[str, Timing], float]], procs: int, runs: int) -> None:
    nproc = sum(1 for n in os.listdir("/proc") if n.isdigit())
    load = os.getloadavg()[0]
    print(f"inventory benchmark: {procs} socket-holding processes, {nproc} processes in all,")
    print(f"median of {runs} interleaved runs, load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"{'sockets':>8}  {'measure':<28} {'wall ms':>8} {'x ss':>6} {'cpu ms':>8} {'x ss':>6}")
    for total, (rows, rss_mb) in results.items():
        ref_wall, ref_cpu = rows[REFERENCE]
        for i, (name, (w, c)) in enumerate(rows.items()):
            first = f"{total:>8}" if i == 0 else " " * 8
            print(f"{first}  {name:<28} {w:>8.1f} {w / ref_wall:>6.2f} {c:>8.1f} {c / ref_cpu:>6.2f}")
        print(f"{'':>8}  {'peak RSS (MB), engine runs':<28} {rss_mb:>8.1f}")
        if total == TARGET_SIZE:
            targets = (("engine cold snapshot", COLD_TARGET), ("engine warm refresh", WARM_TARGET))
            for name, target in (*targets, (TRAFFIC, WARM_TARGET)):
                ratio = rows[name][0] / ref_wall
                verdict = "ok" if ratio <= target else "MISSED"
                print(f"target at {total}: {name} <= {target}x ss (wall): {ratio:.2f}x {verdict}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="500,5000,20000", help="total sockets per round (comma separated)")
    p.add_argument("--procs", type=int, default=50, help="socket-holding processes")
    p.add_argument("--runs", type=int, default=7, help="timed runs per measure (median)")
    p.add_argument("--hold", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.hold is not None:
        hold(args.hold)
        return 0
    if os.geteuid() != 0:
        print("bench/inventory.py: needs root (private network namespace, other users' fds)", file=sys.stderr)
        return 3
    ensure_private_netns([os.path.abspath(__file__), *sys.argv[1:]])
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = {total: measure(total, args.procs, args.runs) for total in sizes}
    report(results, args.procs, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
