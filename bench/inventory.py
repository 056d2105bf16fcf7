"""Inventory cost against `ss -tunap`, measured side by side in one run.

    sudo .venv/bin/python bench/inventory.py [--sizes 500,5000,20000] [--procs 50] [--runs 7]

Spawns --procs helper processes holding N sockets in total (half bound UDP, half TCP: listeners
and established loopback pairs), then times, median of --runs after one warm-up:

  * engine cold snapshot      a new Inventory each time (every process new, every fd scanned)
  * engine warm refresh       the same Inventory again, nothing changed (what the TUI pays at 1 Hz)
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

UNSHARED = "NETJAIL_BENCH_UNSHARED"
COLD_TARGET, WARM_TARGET, TARGET_SIZE = 1.0, 0.3, 5000


# ---- safety: a private network namespace --------------------------------------------------


def in_private_netns() -> bool:
    """Not in PID 1's netns; when PID 1 may not be inspected, an ancestor in another netns."""
    own = os.stat("/proc/self/ns/net").st_ino
    try:
        return own != os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        pass
    pid = os.getppid()
    while pid > 1:
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != own:
                return True
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def ensure_private_netns(argv: list[str]) -> None:
    if os.environ.get(UNSHARED) == "1" or in_private_netns():
        return
    os.environ[UNSHARED] = "1"
    script = 'ip link set lo up && exec "$0" "$@"'
    os.execvp("unshare", ["unshare", "-n", "--", "sh", "-c", script, sys.executable, *argv])


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


def medians_ms(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall time of each measure; runs are interleaved round-robin so a busy moment on
    the machine hits every measure alike instead of skewing one of them."""
    for fn in fns.values():
        fn()  # warm-up: page cache, imports, first-call allocations
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(ts) for name, ts in times.items()}


def measure(total: int, procs: int, runs: int) -> list[tuple[str, float]]:
    import psutil
    from netjail.backends.inventory import Inventory

    ss = shutil.which("ss") or "ss"
    with holders(total, procs) as pids:
        check = Inventory().snapshot()
        seen = sum(len(p.sockets) for p in check.processes if p.pid in set(pids))
        if seen != total:
            raise SystemExit(f"inventory saw {seen} of {total} held sockets: benchmark invalid")
        warm = Inventory()
        warm.snapshot()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before psutil runs
        got = medians_ms(
            {
                "ss -tunap (whole process)": lambda: subprocess.run(
                    [ss, "-tunap"], stdout=subprocess.DEVNULL
                ),
                "engine cold snapshot": lambda: Inventory().snapshot(),
                "engine warm refresh": warm.snapshot,
                "engine warm, inet only": lambda: warm.snapshot(all_processes=False),
                "psutil.net_connections()": lambda: psutil.net_connections(kind="inet"),
            },
            runs,
        )
    return [*got.items(), ("peak RSS after engine runs (MB)", rss_mb)]


def report(results: dict[int, list[tuple[str, float]]], procs: int, runs: int) -> int:
    nproc = sum(1 for n in os.listdir("/proc") if n.isdigit())
    print(
        f"inventory benchmark: {procs} socket-holding processes, {nproc} processes in all, median of {runs}"
    )
    print(f"{'sockets':>8}  {'measure':<34} {'ms':>9} {'x ss':>6}")
    for total, rows in results.items():
        ref = rows[0][1]
        for i, (name, value) in enumerate(rows):
            first = f"{total:>8}" if i == 0 else " " * 8
            if name.startswith("peak RSS"):
                print(f"{first}  {name:<34} {value:>9.1f}")
            else:
                print(f"{first}  {name:<34} {value:>9.1f} {value / ref:>6.2f}")
        if total == TARGET_SIZE:
            got = dict(rows)
            for name, target in (("engine cold snapshot", COLD_TARGET), ("engine warm refresh", WARM_TARGET)):
                ratio = got[name] / ref
                verdict = "ok" if ratio <= target else "MISSED"
                print(f"target at {total}: {name} <= {target}x ss: {ratio:.2f}x {verdict}")
    return 0


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
    return report(results, args.procs, args.runs)


if __name__ == "__main__":
    raise SystemExit(main())
