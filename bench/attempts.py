"""What the attempts log costs, against tcpdump reading the same NFLOG group, side by side.

    sudo .venv/bin/python bench/attempts.py [--seconds 4] [--rates 1000,10000,100000]

For each offered rate of dropped packets (a paced UDP sender whose packets hit an NFLOG + DROP
pair on loopback) it runs, one after the other on the same group (a group has one reader):

  * the netjail collector (a process of its own, as in the watcher), and
  * `tcpdump -i nflog:GROUP -w /dev/null` (the reference),

first with netjail's per-jail rate limit on the log rule (what a jail installs: the collector
sees at most that many copies a second, whatever is offered), then without it, so both read
every copy and the per-event cost shows. Reported: CPU % of each reader over the window, events
a second recorded (collector: rows counted in the log; tcpdump: packets it wrote), and the
collector's latency from a drop to the row in `netjail attempts` (median and worst of 20 single
drops, timed from the send).

Started in the machine's own network namespace, it re-executes itself under `unshare -n`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from private_netns import ensure_private_netns

ensure_private_netns(sys.argv)

from netjail.backends.attempts import prefix  # noqa: E402
from netjail.backends.attempts.store import AttemptLog  # noqa: E402

GROUP = 5790
DEST = "10.78.0.9"

SENDER = """
import socket, sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
per_ms = max(1, rate // 1000)
sent, start = 0, time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = max(1, int(now * rate))
    while sent < due:
        try: s.sendto(b"x" * 32, ("DEST", 9))
        except OSError: pass
        sent += 1
    time.sleep(0.0005)
print(sent)
""".replace("DEST", DEST)

# one packet per line read, and the wall time just after it went: the latency is measured from
# the drop, not from a Python start-up
ON_DEMAND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in sys.stdin:
    try: s.sendto(b"x", ("DEST", 9))
    except OSError: pass
    print(time.time(), flush=True)
""".replace("DEST", DEST)

COLLECTOR = """
import sys, threading
from pathlib import Path
from netjail.backends.attempts.collector import Collector
c = Collector(Path(sys.argv[1]), group=int(sys.argv[2]))
print("ready", flush=True)
c.run(threading.Event())
"""


def cpu_seconds(pid: int) -> float:
    """Time on CPU of every thread of `pid`, in ns resolution (schedstat; stat's ticks are 10 ms)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def rules(limited: bool, action: str) -> None:
    limit = ["-m", "limit", "--limit", prefix.RATE, "--limit-burst", str(prefix.BURST)] if limited else []
    nflog = [
        "-j",
        "NFLOG",
        "--nflog-group",
        str(GROUP),
        "--nflog-size",
        str(prefix.SNAPLEN),
        "--nflog-prefix",
        prefix.make("out", "bench"),
    ]
    for rule in ([*limit, *nflog], ["-j", "DROP"]):
        subprocess.run(["iptables-legacy", action, "OUTPUT", "-d", DEST, "-p", "udp", *rule], check=True)


def logged_rows(directory: Path) -> int:
    log = AttemptLog(directory, create=False)
    try:
        return sum(r.count for r in log.attempts())
    finally:
        log.close()


def send(rate: int, seconds: float) -> int:
    out = subprocess.run(
        [sys.executable, "-c", SENDER, str(rate), str(seconds)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def run_collector(directory: Path, rate: int, seconds: float) -> tuple[float, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR, str(directory), str(GROUP)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    try:
        before_rows, before_cpu, t0 = logged_rows(directory), cpu_seconds(proc.pid), time.monotonic()
        send(rate, seconds)
        time.sleep(0.5)  # the last batch
        cpu, wall = cpu_seconds(proc.pid) - before_cpu, time.monotonic() - t0
        rows = logged_rows(directory) - before_rows
    finally:
        proc.kill()
        proc.wait()
    return 100 * cpu / wall, rows / seconds


def run_tcpdump(rate: int, seconds: float) -> tuple[float, float]:
    proc = subprocess.Popen(
        ["tcpdump", "-i", f"nflog:{GROUP}", "-w", "/dev/null", "-U"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # tcpdump has no "ready" line before its first packet
    try:
        before_cpu, t0 = cpu_seconds(proc.pid), time.monotonic()
        send(rate, seconds)
        time.sleep(0.5)
        cpu, wall = cpu_seconds(proc.pid) - before_cpu, time.monotonic() - t0
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    captured = next((int(line.split()[0]) for line in err.splitlines() if "packets captured" in line), 0)
    return 100 * cpu / wall, captured / seconds


def latency(directory: Path) -> tuple[float, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR, str(directory), str(GROUP)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    sender = subprocess.Popen(
        [sys.executable, "-c", ON_DEMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sender.stdin is not None and sender.stdout is not None
    times = []
    try:
        for i in range(20):
            before = logged_rows(directory)
            sender.stdin.write("\n")
            sender.stdin.flush()
            sent = float(sender.stdout.readline())
            while logged_rows(directory) == before and time.time() - sent < 5:
                time.sleep(0.005)
            times.append(time.time() - sent)
            time.sleep(0.3 + 0.05 * i)  # drops at every phase of the collector's flush period
    finally:
        sender.kill()
        sender.wait()
        proc.kill()
        proc.wait()
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rates", default="1000,10000,100000")
    a = ap.parse_args()
    subprocess.run(["ip", "addr", "add", f"{DEST}/32", "dev", "lo"], check=False)
    with tempfile.TemporaryDirectory(dir="/run") as tmp:
        directory = Path(tmp) / "state"
        print(
            f"{'limit':>9} {'offered/s':>10} | {'netjail CPU':>11} {'events/s':>9} | "
            f"{'tcpdump CPU':>11} {'events/s':>9} | ratio (CPU per event)"
        )
        for limited in (True, False):
            rules(limited, "-A")
            try:
                for rate in (int(r) for r in a.rates.split(",")):
                    nj_cpu, nj_rate = run_collector(directory, rate, a.seconds)
                    td_cpu, td_rate = run_tcpdump(rate, a.seconds)
                    per = (nj_cpu / max(nj_rate, 1)) / max(td_cpu / max(td_rate, 1), 1e-9)
                    label = "per jail" if limited else "none"
                    print(
                        f"{label:>9} {rate:>10} | {nj_cpu:>10.2f}% {nj_rate:>9.0f} | "
                        f"{td_cpu:>10.2f}% {td_rate:>9.0f} | {per:.2f}x"
                    )
                if limited:
                    median, worst = latency(directory)
                    print(
                        f"latency drop -> row in the log: {1000 * median:.0f} ms median,"
                        f" {1000 * worst:.0f} ms worst of 20"
                    )
            finally:
                rules(limited, "-D")


if __name__ == "__main__":
    main()
