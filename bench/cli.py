"""The CLI as a whole process, side by side in one run with the tools a person compares it with.

    sudo .venv/bin/python bench/cli.py [--sizes 500,5000,20000] [--jails 20] [--rules 1000] [--runs 9]

Medians (wall time; CPU time next to it), measures interleaved round-robin after a warm-up:

  * start-up     `netjail --help` against `python -c pass` (the same interpreter)
  * ps           `netjail ps --json` against `ss -tunap` at each size (bench/inventory.py's socket
                 holders: 50 processes, half bound UDP, half TCP listeners and loopback pairs)
  * jails        with --jails cgroup jails (one sleeping process each, blocked through the engine,
                 watcher running as after `netjail block`) and foreign rules filling the filter
                 table to --rules: `netjail list --json` and `netjail counters --json` against
                 `iptables-legacy-save -c`, next to a floor (`python -I -S` importing the standard
                 library such a command needs, nothing else); `list` also with a watcher that
                 never ticks (so it reconciles itself every time)
  * block        `netjail block PID`: call to the first dropped datagram, against
                 `iptables-legacy -I OUTPUT ... -j DROP` (bench/counters.py's sender), with the
                 jails above in place

Python's own part is shown too: `python -X importtime` of the ps and counters paths, started as
the installed `netjail` starts (its first line: `python -I -S` for the launcher make setup writes).
It needs root and must not run in the machine's own network namespace: started there, it
re-executes itself under `unshare -n` with lo up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from counters import first_drop_after
from inventory import Timing, holders, medians
from private_netns import ensure_private_netns

PS_TARGET, JAILS_TARGET, BLOCK_TARGET, PS_SIZE = 2.0, 15.0, 30.0, 5000
# The standard library a CLI built on argparse and dataclasses that reads a state directory
# (pathlib) and the kernel's rule blob (socket, ctypes) and prints JSON cannot avoid, started and
# ended as the launcher does (no cyclic GC, os._exit): no netjail code, no work. `list` and
# `counters` against it show what netjail itself adds.
FLOOR_IMPORTS = "import argparse, dataclasses, json, pathlib, socket, ctypes"
FLOOR = f"import gc; gc.disable(); {FLOOR_IMPORTS}; import os; os._exit(0)"
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def netjail_cmd() -> list[str]:
    script = Path(sys.executable).with_name("netjail")  # the installed entry point
    return [str(script)] if script.exists() else [sys.executable, "-m", "netjail.app.cli"]


def runner(cmd: list[str], env: dict[str, str] | None = None) -> Callable[[], object]:
    full = {**os.environ, **env} if env else None
    return lambda: subprocess.run(cmd, check=True, env=full, **QUIET)  # type: ignore[call-overload]


def show(title: str, rows: dict[str, Timing], ref: str) -> dict[str, float]:
    print(f"\n{title}")
    print(f"  {'measure':<52} {'wall ms':>9} {'cpu ms':>8} {'x ref':>7}")
    base = rows[ref][0]
    for name, (wall, cpu) in rows.items():
        print(f"  {name:<52} {wall:>9.1f} {cpu:>8.1f} {wall / base:>7.2f}")
    return {name: wall / base for name, (wall, _) in rows.items()}


def verdict(what: str, ratio: float, target: float) -> None:
    print(f"  target: {what} <= {target:g}x: {ratio:.2f}x {'ok' if ratio <= target else 'MISSED'}")


def importtime_cmd(args: list[str]) -> list[str]:
    """The installed command under `-X importtime`, started as its first line starts it (the
    launcher make setup writes: `python -IS`, app/launcher.py)."""
    cmd = netjail_cmd()
    if len(cmd) > 1:
        return [sys.executable, "-X", "importtime", *cmd[1:], *args]
    with open(cmd[0]) as f:
        flags = f.readline().split()[1:]
    return [sys.executable, "-X", "importtime", *flags, cmd[0], *args]


def import_ms(args: list[str]) -> float:
    """Sum of the self times `python -X importtime` reports for a command (ms)."""
    out = subprocess.run(importtime_cmd(args), capture_output=True, text=True)
    total = 0
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            total += int(line.split("|")[0].split(":")[1])
    return total / 1000


# ---- start-up and ps --------------------------------------------------------------------------


def bench_startup(runs: int) -> None:
    rows = medians(
        {
            "python -c pass (reference)": runner([sys.executable, "-c", "pass"]),
            "python -I -S -c pass (no site, no venv .pth files)": runner(
                [sys.executable, "-I", "-S", "-c", "pass"]
            ),
            "netjail --help": runner([*netjail_cmd(), "--help"]),
        },
        runs,
    )
    show("start-up", rows, "python -c pass (reference)")
    print(
        f"  imports (sum of -X importtime self times): ps --json {import_ms(['ps', '--json']):.1f} ms,"
        f" counters --json {import_ms(['counters', '--json']):.1f} ms,"
        f" --help {import_ms(['--help']):.1f} ms"
    )


def bench_ps(sizes: list[int], runs: int) -> None:
    ss = shutil.which("ss") or "ss"
    for total in sizes:
        with holders(total, 50):
            rows = medians(
                {
                    "ss -tunap (reference)": runner([ss, "-tunap"]),
                    "netjail ps --json": runner([*netjail_cmd(), "ps", "--json"]),
                },
                runs,
            )
        ratios = show(f"ps at {total} sockets", rows, "ss -tunap (reference)")
        if total == PS_SIZE:
            verdict(f"netjail ps --json at {PS_SIZE} sockets", ratios["netjail ps --json"], PS_TARGET)


# ---- jails ------------------------------------------------------------------------------------


def rule_count() -> int:
    total = 0
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        out = subprocess.run([tool, "-t", "filter"], capture_output=True, text=True, check=True).stdout
        total += sum(1 for line in out.splitlines() if line.startswith("-A "))
    return total


def fill_rules(upto: int) -> int:
    missing = upto - rule_count()
    if missing > 0:
        lines = ["*filter", ":BENCH-FOREIGN - [0:0]", "-A FORWARD -j BENCH-FOREIGN"]
        lines += [
            f"-A BENCH-FOREIGN -d 172.18.{i // 250}.{i % 250 + 1}/32 -p tcp --dport 80 -j ACCEPT"
            for i in range(missing - 1)
        ]
        lines.append("COMMIT\n")
        subprocess.run(
            ["iptables-legacy-restore", "-w", "--noflush"], input="\n".join(lines), text=True, check=True
        )
    return rule_count()


@contextlib.contextmanager
def jailed_sleepers(count: int) -> Iterator[list[int]]:
    from netjail.backends.engine import Engine
    from netjail.backends.model import BlockRequest

    sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(count)]
    engine = Engine()
    try:
        for i, p in enumerate(sleepers):
            engine.block(BlockRequest(p.pid, jail=f"bench{i}", allow=(f"10.{i}.0.0/16",)))
        yield [p.pid for p in sleepers]
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        engine.reset()


def bench_jails(jails: int, rules: int, runs: int) -> None:
    from netjail.backends.engine import Engine
    from netjail.backends.errors import BadInput
    from netjail.backends.jails import watcher
    from netjail.backends.model import UnblockRequest

    with jailed_sleepers(jails):
        total = fill_rules(rules)
        state_dir = Engine().store.dir
        deadline = time.monotonic() + 10  # the watcher's first pass after the last block
        while not watcher.reconciled_within(state_dir, 1.0) and time.monotonic() < deadline:
            time.sleep(0.1)
        save = shutil.which("iptables-legacy-save") or "iptables-legacy-save"
        rows = medians(
            {
                "iptables-legacy-save -c (reference)": runner([save, "-c"]),
                "netjail list --json (watcher fresh: no own reconcile)": runner(
                    [*netjail_cmd(), "list", "--json"]
                ),
                "netjail counters --json": runner([*netjail_cmd(), "counters", "--json"]),
                "floor: python -I -S importing what it must (below)": runner(
                    [sys.executable, "-I", "-S", "-c", FLOOR]
                ),
            },
            runs,
        )
        ratios = show(
            f"{jails} jails, {total} rules in the filter table (both families)",
            rows,
            "iptables-legacy-save -c (reference)",
        )
        verdict(
            "netjail list --json",
            ratios["netjail list --json (watcher fresh: no own reconcile)"],
            JAILS_TARGET,
        )
        verdict("netjail counters --json", ratios["netjail counters --json"], JAILS_TARGET)
        print(f"  floor: python -I -S -c '{FLOOR}'")

        # the same list when it must reconcile itself: a watcher that never ticks
        watcher.stop(state_dir)
        idle = {"NETJAIL_WATCH_INTERVAL": "3600"}
        rows = medians(
            {
                "iptables-legacy-save -c (reference)": runner([save, "-c"]),
                "netjail list --json (reconciling)": runner([*netjail_cmd(), "list", "--json"], idle),
            },
            runs,
        )
        show(
            "list reconciling every time (scoped to the jails' members)",
            rows,
            "iptables-legacy-save -c (reference)",
        )
        watcher.stop(state_dir)

        engine = Engine(spawn_watcher=False)

        def insert(port: int, pid: int) -> None:
            subprocess.run(
                ["iptables-legacy", "-w", "-I", "OUTPUT", "-p", "udp", "--dport", str(port), "-j", "DROP"],
                check=True,
            )

        def delete(port: int, pid: int) -> None:
            subprocess.run(
                ["iptables-legacy", "-w", "-D", "OUTPUT", "-p", "udp", "--dport", str(port), "-j", "DROP"],
                check=True,
            )

        def cli_block(port: int, pid: int) -> None:
            subprocess.run([*netjail_cmd(), "block", str(pid), "--jail", "latency"], check=True, **QUIET)

        def unjail(port: int, pid: int) -> None:
            with contextlib.suppress(BadInput):  # the sender is gone: reconciliation removed the jail
                engine.unblock(UnblockRequest(jail="latency"))

        ports = iter(range(41000, 41000 + 4 * (runs + 1)))
        ref = [first_drop_after(insert, delete, next(ports)) for _ in range(runs + 1)][1:]
        got = [first_drop_after(cli_block, unjail, next(ports)) for _ in range(runs + 1)][1:]
        ref_ms, got_ms = statistics.median(ref), statistics.median(got)
        print(f"\nblock latency, call to first dropped datagram, {jails} jails present (median of {runs})")
        print(
            f"  {'iptables-legacy -I OUTPUT ... -j DROP (reference)':<52} {ref_ms:>9.1f} {'':>8} {1.0:>7.2f}"
        )
        print(f"  {'netjail block PID (whole process)':<52} {got_ms:>9.1f} {'':>8} {got_ms / ref_ms:>7.2f}")
        verdict("netjail block PID", got_ms / ref_ms, BLOCK_TARGET)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="500,5000,20000")
    p.add_argument("--jails", type=int, default=20)
    p.add_argument("--rules", type=int, default=1000, help="rules in the filter table, both families")
    p.add_argument("--runs", type=int, default=9)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/cli.py: needs root (private network namespace, iptables)", file=sys.stderr)
        return 3
    ensure_private_netns([os.path.abspath(__file__), *sys.argv[1:]])
    # What a user's installation has: compiled modules. An environment with
    # PYTHONDONTWRITEBYTECODE=1 would make every run compile netjail from source (~40 ms).
    import compileall

    import netjail.app
    import netjail.backends

    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        print("(PYTHONDONTWRITEBYTECODE was set: unset for the measured commands)")
    for package in (netjail.app, netjail.backends):
        compileall.compile_dir(package.__path__[0], quiet=1)
    print(f"CLI benchmark (whole processes), median of {args.runs}; load average {os.getloadavg()[0]:.1f}")
    bench_startup(args.runs)
    bench_ps([int(s) for s in args.sizes.split(",") if s], args.runs)
    bench_jails(args.jails, args.rules, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
