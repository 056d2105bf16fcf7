"""Firewall costs against the firewall's own tool (iptables-legacy, nft), side by side in one run.

    sudo .venv/bin/python bench/counters.py [--backend both|iptables|nftables] [--jails 50]
        [--rules 20] [--runs 15]

--backend both (the default) runs the iptables section, then the nftables one, each in a fresh
network namespace of its own, and ends with their ratios side by side.

Builds --jails jails of --rules rules each (selectors and allow entries in both families plus each
jail chain's DROP: 50 x 20 = 1000 rules), with some foreign rules around them, then times, median
of --runs after one warm-up:

  counters
    * engine counters()                one kernel read per family, both families
    * iptables-legacy-save -c          whole process, output read (IPv4, all tables): the reference
    * ip(6)tables-legacy-save -c       both families, filter table, the fair comparison
    * naive python-iptables walk       Rule objects for every rule of netjail's chains
  sync
    * engine sync_jails, all jails     from nothing, one commit per family
    * iptables/ip6tables-legacy-restore --noflush of the same rules (reference)
    * engine re-sync, nothing changed  what a reconcile pass costs
  block latency
    * sync_jail(new jail, selector on a UDP port) until the first packet is dropped
    * `iptables-legacy -w -I OUTPUT -p udp --dport P -j DROP` until the first drop (reference)
    * Engine.block(pid) and `netjail block PID` (the installed CLI, a whole process)

The nftables section measures the same against `nft`: counters() and `netjail counters --json`
against `nft -j list table inet netjail` (whole process), a sync of all jails against `nft -f`
of the same table (dumped with `nft list table`, loaded into a fresh one), a re-sync with
nothing changed (the generation-id fast path, and a full listing and plan after another
writer moved the generation id), block latency against one `nft add rule inet njbench-ref
output udp dport P drop` in a table of the bench's own. It does this for two jail sets: the
"5-tuple" set above (each selector a plain rule in nftables) and a "realistic" set
(nft_jails.py: cgroup and socket-mark selectors of both families, which nftables looks up in
verdict maps, allow-lists of CIDRs and CIDR:PORTs in interval sets); the iptables section
measures the realistic set too, so both backends are compared on the same jails.

It needs root and never touches the machine's own firewall: started in PID 1's network namespace,
it re-executes itself under `unshare -n` with lo up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from netjail.backends.firewall import rule_build
from netjail.backends.firewall.base import JAIL_CHAIN_PREFIX, Firewall, JailRules, Match
from nft_jails import (
    ReferenceTable,
    bench_cgroups,
    foreign_nft_rules,
    netjail_cmd,
    realistic_jails,
    remove_state_dir,
    table_counts,
    use_backend,
)
from private_netns import ensure_private_netns, run_in_fresh_netns

COUNTERS_TARGET = 2.0  # engine counters() <= 2x the backend's own tool listing everything
TOOLS = {"inet": "iptables-legacy", "inet6": "ip6tables-legacy"}
BACKENDS = ("iptables", "nftables")
# Cgroups are machine-wide: our own parent, so no other netjail (or test run) sees our jails.
os.environ.setdefault("NETJAIL_CGROUP_PARENT", f"netjail-bench-{os.getpid()}")

Rows = list[tuple[str, float]]


# ---- the rule set -----------------------------------------------------------------------------
def jail_rules(index: int, per_jail: int) -> JailRules:
    """`per_jail` rules: 4 DROPs (out/in x 2 families), the rest selectors and allow entries."""
    body = per_jail - 4
    out4, out6, allow4, allow6, in4 = [], [], [], [], []
    for k in range(body):
        port = 10000 + index * 100 + k
        match k % 5:
            case 0:
                out4.append(Match("inet", "tcp", dst=f"10.{index}.{k}.1", dport=port, sport=port + 1))
            case 1:
                out6.append(Match("inet6", "udp", src=f"fd00:{index:x}::{k:x}", sport=port))
            case 2:
                allow4.append(Match("inet", "tcp", dst=f"192.168.{index}.0/24", dport=port))
            case 3:
                allow6.append(Match("inet6", dst=f"fd01:{index:x}:{k:x}::/48"))
            case _:
                in4.append(Match("inet", "udp", dport=port))
    return JailRules(
        f"bench{index}",
        out_selectors=(*out4, *out6),
        in_selectors=tuple(in4),
        out_allow=tuple(allow4),
        in_allow=tuple(allow6),
    )


def add_foreign_rules(count: int) -> None:
    """Rules of other tools (Docker-like), so the reads walk more than netjail's rules."""
    lines = ["*filter", ":FOREIGN - [0:0]", "-A FORWARD -j FOREIGN"]
    lines += [
        f"-A FOREIGN -d 172.17.{i // 250}.{i % 250 + 1}/32 -p tcp --dport 80 -j ACCEPT" for i in range(count)
    ]
    lines.append("COMMIT\n")
    subprocess.run(
        ["iptables-legacy-restore", "-w", "--noflush"], input="\n".join(lines), text=True, check=True
    )


def our_rule_count() -> int:
    """Rules in netjail's jail and dispatch chains, both families, as iptables-legacy-save sees them."""
    total = 0
    for tool in TOOLS.values():
        out = subprocess.run([f"{tool}-save", "-t", "filter"], capture_output=True, text=True, check=True)
        total += sum(1 for line in out.stdout.splitlines() if line.startswith(("-A NJ-", "-A NETJAIL-")))
    return total


def jail_rule_count() -> int:
    total = 0
    for tool in TOOLS.values():
        out = subprocess.run([f"{tool}-save", "-t", "filter"], capture_output=True, text=True, check=True)
        total += sum(
            1
            for line in out.stdout.splitlines()
            if line.startswith(tuple("-A " + p for p in JAIL_CHAIN_PREFIX.values()))
        )
    return total


# ---- measuring ---------------------------------------------------------------------------------


def median_ms(fn: Callable[[], object], runs: int, setup: Callable[[], object] | None = None) -> float:
    if setup:
        setup()
    fn()  # warm-up: page cache, imports, first-call allocations
    times = []
    for _ in range(runs):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run_out(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def naive_walk() -> int:
    """Counters the obvious python-iptables way: a Rule object per rule of netjail's chains."""
    import iptc

    total = 0
    prefixes = tuple(JAIL_CHAIN_PREFIX.values())
    for table in (iptc.Table(iptc.Table.FILTER), iptc.Table6(iptc.Table6.FILTER)):
        table.refresh()
        for chain in table.chains:
            if chain.name.startswith(prefixes):
                for rule in chain.rules:
                    packets, _ = rule.get_counters()
                    total += packets if rule.target.name in ("DROP", "RETURN") else 0
    return total


def bench_counters(fw: Firewall, runs: int, naive: bool = True) -> Rows:
    rows = [
        (
            "iptables-legacy-save -c (whole process)",
            median_ms(lambda: run_out("iptables-legacy-save", "-c"), runs),
        ),
        ("engine counters(), both families", median_ms(fw.counters, runs)),
        ("netjail counters --json (whole process)", median_ms(cli_counters, runs)),
        (
            "ip(6)tables-legacy-save -c -t filter, both",
            median_ms(
                lambda: (
                    run_out("iptables-legacy-save", "-c", "-t", "filter"),
                    run_out("ip6tables-legacy-save", "-c", "-t", "filter"),
                ),
                runs,
            ),
        ),
    ]
    if naive:
        rows.append(("naive python-iptables walk", median_ms(naive_walk, runs)))
    return rows


def bench_sync(fw: Firewall, jails: list[JailRules], runs: int) -> Rows:
    fw.sync_jails(jails)
    dumps = {f: run_out(f"{tool}-save", "-t", "filter") for f, tool in TOOLS.items()}

    def restore() -> None:
        for f, tool in TOOLS.items():
            subprocess.run([f"{tool}-restore", "-w", "--noflush"], input=dumps[f], text=True, check=True)

    def cold() -> None:
        fw.reset()
        rule_build._build.cache_clear()

    sync_runs = max(3, runs // 3)
    rows = [
        ("ip(6)tables-legacy-restore --noflush", median_ms(restore, sync_runs, setup=fw.reset)),
        ("engine sync_jails, all jails", median_ms(lambda: fw.sync_jails(jails), sync_runs, setup=fw.reset)),
        (
            "engine sync_jails, cold entry cache",
            median_ms(lambda: fw.sync_jails(jails), sync_runs, setup=cold),
        ),
        ("engine re-sync, nothing changed", median_ms(lambda: fw.sync_jails(jails), runs)),
    ]
    fw.sync_jails(jails)
    return rows


def cli_counters() -> str:
    """`netjail counters --json`, the installed CLI as a user runs it (its output read)."""
    return run_out(*netjail_cmd(), "counters", "--json")


# ---- block latency ---------------------------------------------------------------------------
# Time from the call that blocks to the first packet the kernel drops, seen by a sender process
# sending every ~0.1 ms (EPERM once OUTPUT drops). CLOCK_MONOTONIC is shared across processes.

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
port = int(sys.argv[1])
print("READY", flush=True)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    time.sleep(0.0001)  # a datagram every ~0.1 ms, without starving the process under test
    try:
        s.sendto(b"x", ("127.0.0.1", port))
    except PermissionError:
        print(time.monotonic(), flush=True)
        time.sleep(30)  # stay alive: a blocker may still be moving it (dropped before moved)
        break
    except BlockingIOError:
        pass
"""


def first_drop_after(
    block: Callable[[int, int], object], unblock: Callable[[int, int], object], port: int
) -> float:
    """ms from calling block(port, sender pid) to the sender's first dropped datagram."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", port))
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None
        if sender.stdout.readline().strip() != "READY":
            raise SystemExit("latency sender failed to start")
        time.sleep(0.05)  # let it reach its steady loop
        start = time.monotonic()
        block(port, sender.pid)
        line = sender.stdout.readline().strip()
        if not line:
            raise SystemExit("the block never dropped a packet")
        return (float(line) - start) * 1000
    finally:
        sender.kill()
        sender.wait()
        rx.close()
        unblock(port, sender.pid)


def bench_latency(
    fw: Firewall, runs: int, reference: tuple[str, Callable[[int, int], object], Callable[[int, int], object]]
) -> Rows:
    """The reference (one rule of the backend's own tool) first, then netjail's ways to block."""
    from netjail.backends.engine import Engine
    from netjail.backends.errors import BadInput
    from netjail.backends.model import BlockRequest, UnblockRequest

    engine = Engine(spawn_watcher=False)

    def jail(port: int, pid: int) -> None:
        fw.sync_jail(JailRules("latency", out_selectors=(Match("inet", "udp", dport=port),)))

    def unjail(port: int, pid: int) -> None:
        fw.remove_jail("latency")

    def engine_block(port: int, pid: int) -> None:
        engine.block(BlockRequest(pid, jail="latency"))

    def cli_block(port: int, pid: int) -> None:
        subprocess.run(
            [*netjail_cmd(), "block", str(pid), "--jail", "latency"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def engine_unblock(port: int, pid: int) -> None:
        with contextlib.suppress(BadInput):  # the sender is gone: reconciliation removed the jail
            engine.unblock(UnblockRequest(jail="latency"))

    ports = iter(range(40000, 40000 + 8 * (runs + 1)))  # a new port per run: no cached rule entries
    rows = []
    for name, block, unblock in (
        reference,
        ("engine sync_jail(new jail, UDP port)", jail, unjail),
        ("Engine.block(pid): cgroup jail, in-process", engine_block, engine_unblock),
        ("netjail block PID (whole CLI process)", cli_block, engine_unblock),
    ):
        samples = [first_drop_after(block, unblock, next(ports)) for _ in range(runs + 1)][1:]
        rows.append((name, statistics.median(samples)))
    return rows


# ---- nftables: the same measures against nft --------------------------------------------------


def nft_bench_counters(fw: Firewall, runs: int) -> Rows:
    return [
        (
            "nft -j list table inet netjail (whole process)",
            median_ms(lambda: run_out("nft", "-j", "list", "table", "inet", "netjail"), runs),
        ),
        ("engine counters(), both families", median_ms(fw.counters, runs)),
        ("netjail counters --json (whole process)", median_ms(cli_counters, runs)),
        (
            "nft -j list counters table inet netjail (process)",
            median_ms(lambda: run_out("nft", "-j", "list", "counters", "table", "inet", "netjail"), runs),
        ),
    ]


def nft_bench_sync(fw: Firewall, jails: list[JailRules], runs: int) -> Rows:
    fw.sync_jails(jails)
    dump = run_out("nft", "list", "table", "inet", "netjail")

    def load() -> None:  # into a fresh table: the setup deleted it
        subprocess.run(["nft", "-f", "-"], input=dump, text=True, check=True)

    def move_generation() -> None:  # another writer's commit: the fast path cannot be taken
        subprocess.run(["nft", "add table inet njbench-gen; delete table inet njbench-gen"], check=True)

    sync_runs = max(3, runs // 3)
    rows = [
        ("nft -f of the same table (whole process)", median_ms(load, sync_runs, setup=fw.reset)),
        ("engine sync_jails, all jails", median_ms(lambda: fw.sync_jails(jails), sync_runs, setup=fw.reset)),
        ("engine re-sync, nothing changed", median_ms(lambda: fw.sync_jails(jails), runs)),
        (
            "engine re-sync, unchanged, generation moved",
            median_ms(lambda: fw.sync_jails(jails), runs, setup=move_generation),
        ),
    ]
    fw.sync_jails(jails)
    return rows


def run_nftables(args: argparse.Namespace) -> dict[str, float]:
    from netjail.backends.firewall.nft_backend import NftFirewall

    fw = NftFirewall()
    fw.reset()
    foreign_nft_rules(args.foreign)
    summary: dict[str, float] = {}
    try:
        with bench_cgroups(args.jails) as cgroups:
            for label, jails in (
                ("5-tuple", [jail_rules(i, args.rules) for i in range(args.jails)]),
                ("realistic", realistic_jails(cgroups)),
            ):
                sync_rows = nft_bench_sync(fw, jails, args.runs)
                rules, elements = table_counts()
                print(
                    f"\nnftables, {label} jails: {len(jails)} jails, table inet netjail holds {rules} rules"
                    f" and {elements} set/map elements; a foreign table of {args.foreign} rules;"
                    f" median of {args.runs}"
                )
                counter_rows = nft_bench_counters(fw, args.runs)
                print_rows(f"counters ({label})", counter_rows)
                target_line(counter_rows, "nft -j list table")
                print_rows(f"sync ({label})", sync_rows)
                summarise(summary, label, counter_rows, sync_rows)
                fw.reset()
        if not args.no_latency:
            ref = ReferenceTable()
            try:

                def insert(port: int, pid: int) -> None:
                    subprocess.run(ref.add_drop_cmd(port), check=True)

                def flush(port: int, pid: int) -> None:
                    ref.flush()

                rows = bench_latency(
                    fw, args.runs, ("nft add rule inet T output udp dport P drop", insert, flush)
                )
            finally:
                ref.close()
            print_rows("block latency (call -> first dropped packet)", rows)
            summarise_latency(summary, rows)
    finally:
        fw.reset()
        subprocess.run(["nft", "delete", "table", "inet", "njbench-foreign"], check=False)
    return summary


# ---- iptables ----------------------------------------------------------------------------------


def run_iptables(args: argparse.Namespace) -> dict[str, float]:
    from netjail.backends.firewall.iptc_backend import IptcFirewall

    fw = IptcFirewall()
    fw.reset()
    add_foreign_rules(args.foreign)
    summary: dict[str, float] = {}
    try:
        jails = [jail_rules(i, args.rules) for i in range(args.jails)]
        sync_rows = bench_sync(fw, jails, args.runs)
        in_jails, in_ours = jail_rule_count(), our_rule_count()
        print(
            f"\niptables, 5-tuple jails: {args.jails} jails, {in_jails} rules in jail chains "
            f"({in_ours} with dispatch jumps), {args.foreign} foreign rules, median of {args.runs}"
        )
        counter_rows = bench_counters(fw, args.runs)
        print_rows("counters (5-tuple)", counter_rows)
        target_line(counter_rows, "iptables-legacy-save -c")
        print_rows("sync (5-tuple)", sync_rows)
        summarise(summary, "5-tuple", counter_rows, sync_rows)
        fw.reset()
        with bench_cgroups(args.jails) as cgroups:
            real = realistic_jails(cgroups)
            sync_rows = bench_sync(fw, real, args.runs)
            print(
                f"\niptables, realistic jails: {len(real)} jails, {jail_rule_count()} rules in jail chains"
                f" ({our_rule_count()} with dispatch and lanes)"
            )
            counter_rows = bench_counters(fw, args.runs, naive=False)
            print_rows("counters (realistic)", counter_rows)
            target_line(counter_rows, "iptables-legacy-save -c")
            print_rows("sync (realistic)", sync_rows)
            summarise(summary, "realistic", counter_rows, sync_rows)
            fw.reset()
        if not args.no_latency:
            rows = bench_latency(
                fw, args.runs, ("iptables-legacy -I OUTPUT ... -j DROP", ipt_insert, ipt_delete)
            )
            print_rows("block latency (call -> first dropped packet)", rows)
            summarise_latency(summary, rows)
    finally:
        fw.reset()
    return summary


def ipt_insert(port: int, pid: int) -> None:
    cmd = ["iptables-legacy", "-w", "-I", "OUTPUT", "-p", "udp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(cmd, check=True)


def ipt_delete(port: int, pid: int) -> None:
    cmd = ["iptables-legacy", "-w", "-D", "OUTPUT", "-p", "udp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(cmd, check=True)


# ---- report ------------------------------------------------------------------------------------


def print_rows(title: str, rows: Rows) -> None:
    ref = rows[0][1]
    print(f"\n{title}")
    print(f"  {'measure':<52} {'ms':>9} {'x ref':>7}")
    for name, value in rows:
        print(f"  {name:<52} {value:>9.2f} {value / ref:>7.2f}")


def target_line(rows: Rows, ref_name: str) -> None:
    got = dict(rows)
    ratio = got["engine counters(), both families"] / rows[0][1]
    verdict = "ok" if ratio <= COUNTERS_TARGET else "MISSED"
    print(f"  target: engine counters() <= {COUNTERS_TARGET:g}x {ref_name}: {ratio:.2f}x {verdict}")


SUMMARY_ROWS = {  # summary key -> row name in a section (the ratio is against the section's first row)
    "counters()": "engine counters(), both families",
    "counters --json": "netjail counters --json (whole process)",
    "sync all jails": "engine sync_jails, all jails",
    "re-sync, nothing changed": "engine re-sync, nothing changed",
}


def summarise(summary: dict[str, float], label: str, counter_rows: Rows, sync_rows: Rows) -> None:
    """x ref of each summary row, and its milliseconds (the backends' own tools differ)."""
    for rows in (counter_rows, sync_rows):
        got = dict(rows)
        for key, name in SUMMARY_ROWS.items():
            if name in got:
                summary[f"{label}: {key}, x ref"] = got[name] / rows[0][1]
                summary[f"{label}: {key}, ms"] = got[name]


def summarise_latency(summary: dict[str, float], rows: Rows) -> None:
    summary["block latency: the tool's one rule, ms"] = rows[0][1]
    for name, value in rows[1:]:
        summary[f"block latency: {name.split(':')[0]}, x ref"] = value / rows[0][1]
        summary[f"block latency: {name.split(':')[0]}, ms"] = value


def print_comparison(results: dict[str, dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print("\nboth backends: x ref against each one's own tool (iptables-legacy(-save/-restore), nft)")
    print(f"  {'measure':<66} " + " ".join(f"{b:>9}" for b in results))
    for key in keys:
        cells = " ".join(f"{results[b][key]:>9.2f}" if key in results[b] else f"{'-':>9}" for b in results)
        print(f"  {key:<66} {cells}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    p.add_argument("--jails", type=int, default=50)
    p.add_argument("--rules", type=int, default=20, help="rules per jail, including its 4 DROPs")
    p.add_argument("--foreign", type=int, default=200, help="foreign rules in the filter table")
    p.add_argument("--runs", type=int, default=15, help="timed runs per measure (median)")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--summary", help=argparse.SUPPRESS)  # where a section writes its ratios (both)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/counters.py: needs root (private network namespace, iptables, nft)", file=sys.stderr)
        return 3
    if args.rules < 5:
        p.error("--rules must be at least 5")
    ensure_private_netns([os.path.abspath(__file__), *sys.argv[1:]])
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"firewall benchmark ({args.backend}), load average {load}")
    if args.backend == "both":
        results: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory(prefix="netjail-bench-") as tmp:
            for backend in BACKENDS:
                out = os.path.join(tmp, f"{backend}.json")
                argv = [os.path.abspath(__file__), "--backend", backend, "--summary", out]
                argv += [
                    "--jails",
                    str(args.jails),
                    "--rules",
                    str(args.rules),
                    "--foreign",
                    str(args.foreign),
                ]
                argv += ["--runs", str(args.runs), *(["--no-latency"] if args.no_latency else [])]
                if run_in_fresh_netns(argv) != 0:
                    return 1
                with open(out) as f:
                    results[backend] = json.load(f)
        print_comparison(results)
        print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return 0
    use_backend(args.backend)
    state = tempfile.mkdtemp(prefix="netjail-bench-state-")
    os.environ["NETJAIL_STATE_DIR"] = state  # a registry of our own: nothing left in /run/netjail
    try:
        summary = run_iptables(args) if args.backend == "iptables" else run_nftables(args)
    finally:
        remove_state_dir(state)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
