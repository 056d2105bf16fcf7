"""What the ipset fallback costs: block a server holding N connections where pidfd_getfd is
refused (simulated: a seccomp filter answering ENOSYS, as a kernel < 5.6 does).

    sudo .venv/bin/python bench/fallback_sets.py [--sizes 5,200,2000] [--iperf]

For each N: netjail rules loaded (iptables-legacy-save lines of netjail's chains), entries in
the jail's sets, and block / unblock time through the engine (in-process, no watcher). With
--iperf, the small-packet UDP rate (iperf3 -u -b 0 -l 100) between two unrelated processes on
loopback with no jail and with the largest N blocked.
It must not run in the machine's own network namespace: started there, it re-executes itself
under `unshare -n` with lo up.
"""

from __future__ import annotations

import argparse
import errno
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from private_netns import ensure_private_netns

SERVER = """
import socket, sys, time
s = socket.create_server(("127.0.0.1", 0), backlog=4096)
print(s.getsockname()[1], flush=True)
held = []
while len(held) < int(sys.argv[1]):
    held.append(s.accept()[0])
print("ready", flush=True)
time.sleep(3600)
"""


# the other ends, in a process of their own: the engine's select() takes fds below 1024 only
CLIENTS = """
import socket, sys, time
def conn(i):  # a source address of its own each (all of 127/8 is local): one set entry each
    source = (f"127.1.{i // 250}.{i % 250 + 1}", 0)
    return socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=source)
held = [conn(i) for i in range(int(sys.argv[2]))]
print("ready", flush=True)
time.sleep(3600)
"""


IPERF = ["iperf3", "-c", "127.0.0.1", "-p", "5299", "-u", "-b", "0", "-l", "100"]
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def rules() -> int:
    out = "".join(
        subprocess.run([t], capture_output=True, text=True, check=True).stdout
        for t in ("iptables-legacy-save", "ip6tables-legacy-save")
    )
    return sum(ln.startswith("-A ") and ("NETJAIL" in ln or "NJ-" in ln) for ln in out.splitlines())


def udp_rate(seconds: int = 3) -> float:
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", "5299"], **QUIET)
    time.sleep(0.5)
    try:
        out = subprocess.run(
            [*IPERF, "-t", str(seconds), "-J"],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.wait(10)
    end = json.loads(out.stdout)["end"]["sum"]
    return float(end["packets"]) / float(end["seconds"])


def main() -> None:
    ensure_private_netns(sys.argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,200,2000")
    ap.add_argument("--iperf", action="store_true")
    ap.add_argument("--marks", action="store_true", help="let pidfd_getfd work (compare with marks)")
    args = ap.parse_args()

    if not args.marks:
        import pyseccomp as sc

        f = sc.SyscallFilter(sc.ALLOW)
        f.add_rule(sc.ERRNO(errno.ENOSYS), "pidfd_getfd")
        f.load()

    from netjail.backends.engine import Engine
    from netjail.backends.model_actions import BlockRequest, UnblockRequest

    engine = Engine(state_dir=Path(tempfile.mkdtemp(prefix="nj-bench-")), spawn_watcher=False)
    print(f"{'sockets':>8} {'rules':>6} {'set entries':>12} {'marked':>7} {'block ms':>9} {'unblock ms':>11}")
    for n in (int(s) for s in args.sizes.split(",")):
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(n)], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = subprocess.Popen(
            [sys.executable, "-c", CLIENTS, str(port), str(n)], stdout=subprocess.PIPE, text=True
        )
        assert clients.stdout is not None and clients.stdout.readline().strip() == "ready"
        assert server.stdout.readline().strip() == "ready"
        try:
            t = time.perf_counter()
            result = engine.block(BlockRequest(pid=server.pid, jail=f"bench{n}"))
            took = time.perf_counter() - t
            loaded = rules()
            rates: list[float] = []
            if args.iperf:
                rates = [udp_rate() for _ in range(3)]
            t = time.perf_counter()
            engine.unblock(UnblockRequest(pid=server.pid))
            back = time.perf_counter() - t
            if rates:  # the same runs right after, without the jail: the machine is shared
                base = statistics.median(udp_rate() for _ in range(3))
                rate = statistics.median(rates)
            print(
                f"{n:>8} {loaded:>6} {result.set_entries:>12} {result.marked_sockets:>7} "
                f"{took * 1000:>9.0f} {back * 1000:>11.0f}"
            )
            if rates:
                print(
                    f"unrelated UDP: {base:,.0f} pkt/s without jails, {rate:,.0f} with it "
                    f"({rate / base:.2f}x)"
                )
        finally:
            clients.kill()
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
