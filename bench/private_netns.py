"""Benchmarks spawn thousands of sockets and load firewall rules: never in the machine's own
network namespace. Started there, a benchmark re-executes itself under `unshare -n`, lo up."""

from __future__ import annotations

import os
import sys

UNSHARED = "NETJAIL_BENCH_UNSHARED"


def in_private_netns() -> bool:
    """Not in PID 1's netns; when PID 1 may not be inspected (some inits deny even root), an
    ancestor in another netns shows that one was unshared for us."""
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
    """Return when in a private network namespace; otherwise re-execute under `unshare -n`."""
    if in_private_netns():
        return
    if os.environ.get(UNSHARED) == "1":
        raise SystemExit(f"{argv[0]}: still in the machine's network namespace after unshare")
    os.environ[UNSHARED] = "1"
    script = 'ip link set lo up && exec "$0" "$@"'
    os.execvp("unshare", ["unshare", "-n", "--", "sh", "-c", script, sys.executable, *argv])


def run_in_fresh_netns(argv: list[str]) -> int:
    """Run a benchmark script (`argv`: its path and arguments) in a new network namespace of its
    own, lo up, in the foreground: one backend's figures are not paid by another's leftovers
    (xtables-legacy tables stay hooked in a namespace once loaded, even empty)."""
    import subprocess

    script = 'ip link set lo up && exec "$0" "$@"'
    return subprocess.run(
        ["unshare", "-n", "--", "sh", "-c", script, sys.executable, *argv], check=False
    ).returncode
