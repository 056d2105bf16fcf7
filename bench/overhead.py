"""What a jail costs everyone else: unrelated small-packet UDP traffic with and without jails
loaded, side by side in one run, and the time to block and unblock a busy server.

    sudo .venv/bin/python bench/overhead.py [--backend both|iptables|nftables] [--conns 2000,20000]
        [--jails 50] [--runs 6] [--quick]

--backend both (the default) runs the whole bench for the iptables backend, then for the nftables
one, each in a fresh network namespace of its own, and ends with both summaries side by side.

For each connection count: a TCP echo server (its own process; a pre-fork server of several
when RLIMIT_NOFILE is lower) holding that many established loopback connections from client
processes (never jailed), plus --jails sleeping processes. Medians of --runs:

  * UDP rate    two unrelated iperf3 processes (`-u -b 0 -l 100`, receiver-side packets/s) over
                loopback in this namespace, and at the same moment the same pair in a fresh
                namespace without a rule (the reference: both share whatever load the machine
                has). First before anything is blocked (a gauge of the noise, ~1.00x), then with
                the server and the sleepers blocked. Target: >= 0.95x of the reference.
  * rules       rules netjail loaded (growth of the namespace's rule count, all tables, both
                families) with the jails in place: must not grow with the connection count.
                nftables: rules and set/map elements in `table inet netjail` (`nft -j list`).
  * block       Engine.block / Engine.unblock of the server in-process (perf_counter), targets
                <= 100 ms each; `netjail block PID` / `netjail unblock --jail` as whole processes
                against `iptables-legacy -I` / `-D` of one rule (reference; nftables: `nft add
                rule` / `nft delete rule ... handle H` in a table of the bench's own). Repeated
                up to --block-runs while the repetitions take under 5 s in all.

--quick: 500 and 2,000 connections, 10 jails, 4 runs of 1 s. Defaults: 2,000 and 20,000
connections, 50 jails, 6 runs of 1.5 s (about 2 minutes while blocks take seconds).
It needs root and must not run in the machine's own network namespace: started there, it
re-executes itself under `unshare -n` with lo up. Everything it creates (jails, cgroups under its
own NETJAIL_CGROUP_PARENT, processes, namespaces) is removed before it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from nft_jails import ReferenceTable, remove_state_dir, table_counts, use_backend
from private_netns import ensure_private_netns, run_in_fresh_netns

BACKENDS = ("iptables", "nftables")
RATE_TARGET, BLOCK_MS_TARGET, UNBLOCK_MS_TARGET = 0.95, 100.0, 100.0
BLOCK_BUDGET_MS = 5000.0
SERVER_PORT, IPERF_PORT, REF_PORT = 7070, 5201, 41500
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
# Cgroups are machine-wide: our own parent, so no other netjail (or test run) sees our jails.
os.environ.setdefault("NETJAIL_CGROUP_PARENT", f"netjail-bench-{os.getpid()}")


def netjail_cmd() -> list[str]:
    script = Path(sys.executable).with_name("netjail")  # the installed entry point
    return [str(script)] if script.exists() else [sys.executable, "-m", "netjail.app.cli"]


def fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (raising the hard one needs CAP_SYS_RESOURCE,
    which containers often lack) and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def shares(count: int) -> list[int]:
    """Connections per process: one process when the fd limit allows, else a pre-fork server of
    several workers (blocked with --tree), as a real server holding that many would be."""
    per = fd_limit() - 128
    n = -(-count // per)
    return [count // n + (1 if i < count % n else 0) for i in range(n)]


# ---- the busy server and its clients (roles of this same script) ------------------------------


def serve(count: int) -> None:
    """Epoll echo server; forks workers sharing the listener when one process may not hold
    `count` sockets. Each says "ready" once it holds its share of established connections."""
    listener = socket.create_server(("127.0.0.1", SERVER_PORT), backlog=4096)
    listener.setblocking(False)
    quotas = shares(count)
    for quota in quotas[1:]:
        if os.fork() == 0:
            serve_share(listener, quota)
    serve_share(listener, quotas[0])


def serve_share(listener: socket.socket, quota: int) -> None:
    sel = selectors.EpollSelector()
    sel.register(listener, selectors.EVENT_READ)
    conns: list[socket.socket] = []
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                with contextlib.suppress(BlockingIOError):
                    while len(conns) < quota:
                        conn, _ = listener.accept()
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ)
                        conns.append(conn)
                if len(conns) == quota:
                    sel.unregister(listener)  # the next worker takes the rest
                    print("ready", flush=True)
            else:
                conn = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(OSError):
                    data = conn.recv(4096)
                    if data:
                        conn.send(data)


def connect(count: int, index: int) -> None:
    """`count` connections to the server from 127.0.0.(2 + index) (its own ephemeral port
    range), held open until killed."""
    fd_limit()
    held = []
    for _ in range(count):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + index}", 0))
        s.connect(("127.0.0.1", SERVER_PORT))
        held.append(s)
    print("connected", flush=True)
    signal.pause()


def role(name: str, count: int, index: int = 0) -> subprocess.Popen[str]:
    argv = [sys.executable, os.path.abspath(__file__), "--role", name, "--conns", str(count)]
    return subprocess.Popen(
        [*argv, "--index", str(index)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=name == "serve",  # its workers go with it (killpg)
    )


@contextlib.contextmanager
def busy_server(count: int) -> Iterator[tuple[int, int]]:
    """The server's PID and its process count, once it holds `count` established connections."""
    server = role("serve", count)
    time.sleep(0.3)  # listening before the first connect
    quotas = shares(count)
    clients = [role("connect", quota, i) for i, quota in enumerate(quotas)]
    try:
        assert server.stdout
        ok = all(c.stdout and c.stdout.readline().strip() == "connected" for c in clients)
        if not ok or [server.stdout.readline().strip() for _ in quotas] != ["ready"] * len(quotas):
            raise SystemExit(f"bench/overhead.py: the server did not get {count} connections")
        yield server.pid, len(quotas)
    finally:
        for p in clients:
            p.kill()
            p.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextlib.contextmanager
def sleepers(count: int) -> Iterator[list[int]]:
    procs = [subprocess.Popen(["sleep", "3600"]) for _ in range(count)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


@contextlib.contextmanager
def reference_netns() -> Iterator[int]:
    """A fresh network namespace without a single rule (lo up), held open by a sleeping process."""
    holder = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 3600"])
    try:
        for _ in range(100):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
                break
            time.sleep(0.01)
        time.sleep(0.1)  # lo up
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


# ---- measurements ---------------------------------------------------------------------------


def udp_rates(netns_pids: list[int | None], seconds: float, shift: int = 0) -> list[float]:
    """Receiver-side packets/s of iperf3 `-u -b 0 -l 100` pairs over loopback, one pair per
    namespace (None: this one), all running at the same time. With a CPU per pair, each pair
    (sender and receiver) is pinned to its own (taskset), pair i to CPU (i + shift) mod n: the
    pairs then do not compete for a CPU, so each one's rate is its per-packet cost, and
    alternating `shift` between runs cancels a difference between the CPUs."""
    ncpu = os.cpu_count() or 1
    prefixes = [
        [
            *(["taskset", "-c", str((i + shift) % ncpu)] if ncpu >= len(netns_pids) else []),
            *(["nsenter", f"--net=/proc/{pid}/ns/net", "--"] if pid else []),
        ]
        for i, pid in enumerate(netns_pids)
    ]
    server = ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(IPERF_PORT), "--json"]
    client = ["iperf3", "-c", "127.0.0.1", "-p", str(IPERF_PORT), "-u", "-b", "0", "-l", "100"]
    client += ["-t", f"{seconds:g}", "--json"]
    servers = [
        subprocess.Popen([*prefix, *server], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for prefix in prefixes
    ]
    try:
        for s in servers:
            listening(s.pid, IPERF_PORT)
        clients = [subprocess.Popen([*prefix, *client], **QUIET) for prefix in prefixes]  # type: ignore[call-overload]
        if any(c.wait() != 0 for c in clients):
            raise SystemExit("bench/overhead.py: an iperf3 client failed")
        rates = []
        for s in servers:
            total = json.loads(s.communicate(timeout=30)[0])["end"]["sum"]  # sent minus lost
            rates.append((total["packets"] - total["lost_packets"]) / float(total["seconds"]))
        return rates
    finally:
        for s in servers:
            if s.poll() is None:
                s.kill()
                s.wait()


def listening(pid: int, port: int) -> None:
    """Until `pid` listens on TCP `port` (read from its own namespace's table: a probe connection
    would be taken by `iperf3 -s -1` as its one client)."""
    entry = f":{port:04X} 00000000:0000 0A"
    for _ in range(500):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/tcp") as f:
            if entry in f.read():
                return
        time.sleep(0.01)
    raise SystemExit("bench/overhead.py: iperf3 server never listened")


def rate_pair(ref_pid: int, runs: int, seconds: float) -> tuple[float, float, float]:
    """Medians of the reference pair's rate and this namespace's pair's, run at the same time
    (the machine is shared: whatever else runs slows both alike; each pair on a CPU of its own
    where there are two, swapped every run), and the median of the per-run ratios."""
    ref, here, ratios = [], [], []
    for i in range(runs):
        r, h = udp_rates([ref_pid, None], seconds, shift=i)
        ref.append(r)
        here.append(h)
        ratios.append(h / r)
    return statistics.median(ref), statistics.median(here), statistics.median(ratios)


def watcher_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "watcher.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuGauge:
    """CPU time a process used from now to percent(), as a share of one core (what the
    watcher's passes take from everyone else while the rates run)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.start, self.used = time.monotonic(), self._cpu()

    def _cpu(self) -> float:
        if self.pid is None:
            return 0.0
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def percent(self) -> float:
        return 100.0 * (self._cpu() - self.used) / max(time.monotonic() - self.start, 1e-9)


def rules_loaded(backend: str) -> int:
    """Every rule of this namespace, all tables, both families: what netjail loaded is the
    growth over the count before blocking, whatever its chains are called. nftables: the rules
    of netjail's own table (nothing else is netjail's), its set and map elements apart."""
    if backend == "nftables":
        return table_counts()[0]
    total = 0
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        out = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        total += sum(1 for line in out.splitlines() if line.startswith("-A "))
    return total


def within_budget(blocks: list[float], unblocks: list[float], runs: int) -> bool:
    """Another block/unblock repetition, up to `runs`, while they took under BLOCK_BUDGET_MS in
    all: a slow block (seconds, at 20,000 sockets) is timed once, so the run stays short."""
    return len(blocks) < runs and sum(blocks) + sum(unblocks) < BLOCK_BUDGET_MS


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def median_ms(fn: Callable[[], object], runs: int) -> float:
    return statistics.median(timed(fn) for _ in range(runs))


def verdict(what: str, got: float, target: float, at_least: bool = False) -> None:
    ok = got >= target if at_least else got <= target
    sign = ">=" if at_least else "<="
    print(f"  target: {what} {sign} {target:g}: {got:.2f} {'ok' if ok else 'MISSED'}")


def row(name: str, value: float, unit: str, ratio: float | None = None) -> None:
    tail = f"{ratio:>7.2f}x" if ratio is not None else ""
    print(f"  {name:<56} {value:>12,.1f} {unit:<5} {tail}")


# ---- one connection count -------------------------------------------------------------------


def bench_size(count: int, jails: int, args: argparse.Namespace, ref_pid: int) -> dict[str, float]:
    from netjail.backends.engine import Engine
    from netjail.backends.model import BlockRequest, UnblockRequest

    engine = Engine()
    result: dict[str, float] = {}
    print(f"\n{count:,} established connections on the blocked server, {jails} other jails")
    with busy_server(count) as (server, procs), sleepers(jails) as idle:
        tree = procs > 1
        if tree:
            print(
                f"  (RLIMIT_NOFILE {fd_limit()}: a pre-fork server of {procs} processes, blocked with --tree)"
            )
        try:
            ref, here, ratio = rate_pair(ref_pid, args.runs, args.seconds)
            print(f"  {'measure (median of ' + str(args.runs) + ')':<56} {'value':>12} {'':<5} {'x ref':>8}")
            row("UDP rate, fresh namespace, no rule (reference)", ref, "pps", 1.0)
            row("UDP rate, here, nothing blocked yet", here, "pps", ratio)

            for i, pid in enumerate(idle):
                engine.block(BlockRequest(pid, jail=f"idle{i}"))

            def block() -> float:
                return timed(lambda: engine.block(BlockRequest(server, tree=tree, jail="server")))

            def unblock() -> float:
                return timed(lambda: engine.unblock(UnblockRequest(jail="server")))

            blocks = [block()]
            rules = rules_loaded(args.backend) - args.foreign_rules
            elements = table_counts()[1] if args.backend == "nftables" else 0
            watcher_cpu = CpuGauge(watcher_pid(engine.store.dir))
            ref, here, ratio = rate_pair(ref_pid, args.runs, args.seconds)
            row("UDP rate, fresh namespace, no rule (reference)", ref, "pps", 1.0)
            row(f"UDP rate, here, server + {jails} jails blocked", here, "pps", ratio)
            verdict("UDP rate with jails, x reference", ratio, RATE_TARGET, at_least=True)
            row("netjail's watcher meanwhile, CPU of one core", watcher_cpu.percent(), "%")
            if args.backend == "nftables":
                row("netjail rules in table inet netjail", rules, "rules")
                row("  and set/map elements (one lookup per set or map)", elements, "elems")
            else:
                row("netjail rules loaded (both families, all tables)", rules, "rules")
            unblocks = [unblock()]
            while within_budget(blocks, unblocks, args.block_runs):
                blocks.append(block())
                unblocks.append(unblock())

            block_ms, unblock_ms = statistics.median(blocks), statistics.median(unblocks)
            print(f"  block/unblock of the server, median of {len(blocks)}:")
            row("Engine.block, in-process", block_ms, "ms")
            row("Engine.unblock, in-process", unblock_ms, "ms")
            verdict("Engine.block ms", block_ms, BLOCK_MS_TARGET)
            verdict("Engine.unblock ms", unblock_ms, UNBLOCK_MS_TARGET)
            cli = cli_block_unblock(server, tree, args.block_runs, args.backend)
            result = {"ratio": ratio, "rules": rules, "elements": elements, "block_ms": block_ms}
            result |= {"unblock_ms": unblock_ms, **cli}
        finally:
            engine.reset()
    return result


class IptablesReference:
    """One rule in OUTPUT, inserted and deleted by iptables-legacy."""

    names = (
        "iptables-legacy -I OUTPUT (one rule, reference)",
        "iptables-legacy -D OUTPUT (one rule, reference)",
    )
    rule = ["-p", "udp", "--dport", str(REF_PORT), "-j", "DROP"]

    def insert(self) -> float:
        cmd = ["iptables-legacy", "-w", "-I", "OUTPUT", *self.rule]
        return timed(lambda: subprocess.run(cmd, check=True, **QUIET))  # type: ignore[call-overload]

    def delete(self) -> float:
        cmd = ["iptables-legacy", "-w", "-D", "OUTPUT", *self.rule]
        return timed(lambda: subprocess.run(cmd, check=True, **QUIET))  # type: ignore[call-overload]

    def close(self) -> None:
        pass


class NftReference:
    """One rule in an output chain of the bench's own table, added and deleted (by handle) by nft."""

    names = ("nft add rule (one rule, reference)", "nft delete rule ... handle H (one rule, reference)")

    def __init__(self) -> None:
        self.table = ReferenceTable()

    def insert(self) -> float:
        cmd = self.table.add_drop_cmd(REF_PORT)
        return timed(lambda: subprocess.run(cmd, check=True, **QUIET))  # type: ignore[call-overload]

    def delete(self) -> float:
        cmd = self.table.delete_cmd(self.table.handle_of(REF_PORT))  # the look-up is not timed
        return timed(lambda: subprocess.run(cmd, check=True, **QUIET))  # type: ignore[call-overload]

    def close(self) -> None:
        self.table.close()


def cli_block_unblock(server: int, tree: bool, runs: int, backend: str) -> dict[str, float]:
    ref = NftReference() if backend == "nftables" else IptablesReference()
    block = [*netjail_cmd(), "block", str(server), "--jail", "server", *(["--tree"] if tree else [])]
    unblock = [*netjail_cmd(), "unblock", "--jail", "server"]
    ins, dels, blk, unb = [], [], [], []
    try:
        while not blk or within_budget(blk, unb, runs):  # interleaved, like the rates
            ins.append(ref.insert())
            dels.append(ref.delete())
            blk.append(timed(lambda: subprocess.run(block, check=True, **QUIET)))  # type: ignore[call-overload]
            unb.append(timed(lambda: subprocess.run(unblock, check=True, **QUIET)))  # type: ignore[call-overload]
    finally:
        ref.close()
    print(f"  whole processes, median of {len(blk)}:")
    ref_in, ref_del = statistics.median(ins), statistics.median(dels)
    blk_ms, unb_ms = statistics.median(blk), statistics.median(unb)
    row(ref.names[0], ref_in, "ms", 1.0)
    row("netjail block PID (whole process)", blk_ms, "ms", blk_ms / ref_in)
    row(ref.names[1], ref_del, "ms", 1.0)
    row("netjail unblock --jail (whole process)", unb_ms, "ms", unb_ms / ref_del)
    return {"ref_in_ms": ref_in, "ref_del_ms": ref_del, "cli_block_ms": blk_ms, "cli_unblock_ms": unb_ms}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    p.add_argument("--summary", help=argparse.SUPPRESS)  # where one backend's run writes its results
    p.add_argument("--conns", default=None, help="connection counts, comma-separated (2000,20000)")
    p.add_argument("--jails", type=int, default=None, help="other jails besides the server (50)")
    p.add_argument("--runs", type=int, default=None, help="iperf3 runs per side (6, even)")
    p.add_argument("--block-runs", type=int, default=5, help="block/unblock repetitions, at most")
    p.add_argument("--seconds", type=float, default=None, help="length of one iperf3 run, seconds (1.5)")
    p.add_argument("--quick", action="store_true", help="500,2000 connections, 10 jails, 4 runs of 1 s")
    p.add_argument("--role", choices=("serve", "connect"), help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role:
        serve(int(args.conns)) if args.role == "serve" else connect(int(args.conns), args.index)
        return 0
    quick = {"conns": "500,2000", "jails": 10, "runs": 4, "seconds": 1.0}
    full = {"conns": "2000,20000", "jails": 50, "runs": 6, "seconds": 1.5}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if os.geteuid() != 0:
        print("bench/overhead.py: needs root (private network namespace, iptables)", file=sys.stderr)
        return 3
    if not shutil.which("iperf3"):
        print("bench/overhead.py: iperf3 missing (make system installs it)", file=sys.stderr)
        return 4
    ensure_private_netns([os.path.abspath(__file__), *sys.argv[1:]])
    if args.backend == "both":
        return both_backends(args)
    use_backend(args.backend)
    sizes = [int(s) for s in args.conns.split(",") if s]
    fd_limit()  # the engine reads (or duplicates) the server's sockets
    print(
        f"overhead benchmark, {args.backend} backend: iperf3 -u -b 0 -l 100,"
        f" {args.seconds:g} s x {args.runs} per side"
        f", reference pair running at the same time; load average {os.getloadavg()[0]:.1f}"
    )
    results = {}
    # a registry of our own: nothing of ours is left in /run/netjail, nothing else is read
    args.foreign_rules = rules_loaded(args.backend)  # before netjail wrote any (other benches' leftovers)
    state = tempfile.mkdtemp(prefix="netjail-bench-state-")
    os.environ["NETJAIL_STATE_DIR"] = state
    try:
        with reference_netns() as ref_pid:
            for count in sizes:
                results[count] = bench_size(count, args.jails, args, ref_pid)
    finally:
        remove_state_dir(state)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump({str(k): v for k, v in results.items()}, f)
    if len(results) > 1:
        print("\nsummary (must not grow with the connection count)")
        print_summary({args.backend: {str(k): v for k, v in results.items()}})
    return 0


SUMMARY_COLUMNS = (  # key, heading, format
    ("ratio", "rate x ref", ".2f"),
    ("rules", "rules", ".0f"),
    ("elements", "elements", ".0f"),
    ("block_ms", "block ms", ".1f"),
    ("unblock_ms", "unblock ms", ".1f"),
    ("ref_in_ms", "ref add ms", ".1f"),
    ("cli_block_ms", "CLI block", ".1f"),
    ("ref_del_ms", "ref del ms", ".1f"),
    ("cli_unblock_ms", "CLI unblock", ".1f"),
)


def print_summary(results: dict[str, dict[str, dict[str, float]]]) -> None:
    """backend -> connection count -> figures, one line each; CLI times with their x reference."""
    print(f"  {'backend':<9} {'connections':>11} " + " ".join(f"{h:>11}" for _, h, _ in SUMMARY_COLUMNS))
    for backend, sizes in results.items():
        for count, r in sizes.items():
            cells = " ".join(f"{r.get(k, 0):>11{fmt}}" for k, _, fmt in SUMMARY_COLUMNS)
            print(f"  {backend:<9} {int(count):>11,} {cells}")
    print("  whole-process ratios (netjail / the backend's own tool, one rule):")
    for backend, sizes in results.items():
        for count, r in sizes.items():
            print(
                f"  {backend:<9} {int(count):>11,}  block {r['cli_block_ms'] / r['ref_in_ms']:.1f}x"
                f"  unblock {r['cli_unblock_ms'] / r['ref_del_ms']:.1f}x"
            )


def both_backends(args: argparse.Namespace) -> int:
    """Each backend's whole run in a fresh namespace of its own, then the summaries together."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="netjail-bench-") as tmp:
        for backend in BACKENDS:
            out = os.path.join(tmp, f"{backend}.json")
            argv = [os.path.abspath(__file__), "--backend", backend, "--summary", out]
            for key in ("conns", "jails", "runs", "seconds", "block_runs"):
                value = getattr(args, key)
                if value is not None:
                    argv += [f"--{key.replace('_', '-')}", str(value)]
            if args.quick:
                argv.append("--quick")
            if run_in_fresh_netns(argv) != 0:
                return 1
            with open(out) as f:
                results[backend] = json.load(f)
    print("\nboth backends (rate target >= 0.95x; rules/elements must not grow with connections)")
    print_summary(results)
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
