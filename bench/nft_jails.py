"""Shared by the benchmarks that measure the nftables backend (not a benchmark: `make bench` runs
it and it does nothing).

- `realistic_jails`: jails as the cgroup strategy makes them (docs/firewall-nftables.md): cgroup
  and socket-mark selectors of both families, which the nftables backend puts in its verdict maps,
  and allow-lists of CIDRs and CIDR:PORTs of both families, which go in its interval sets. The
  5-tuple selectors of bench/counters.py's `jail_rules` become one plain rule each in nftables.
- `bench_cgroups`: the cgroups those jails name (nft resolves a cgroup path when the element is
  added, so they must exist), removed afterwards.
- `table_counts`: rules and set/map elements in `table inet netjail`, from `nft -j list`.
- `ReferenceTable`: a table of the bench's own, for the one-rule references (`nft add rule`).
- `use_backend`: the environment that makes the engine and the CLI use one backend;
  `remove_state_dir`: a bench's registry removed after the watcher it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from netjail.backends.firewall.base import JailRules, Match

TABLE = "inet netjail"
MARK_MASK = 0xFF000000  # socket_marks.DEFAULT_MASK: a jail's mark is its index in the top byte
# the environment variable naming the backend: NETJAIL_FIREWALL now, NETJAIL_BACKEND maybe later
BACKEND_ENVS = ("NETJAIL_FIREWALL", "NETJAIL_BACKEND")


def use_backend(name: str) -> None:
    for env in BACKEND_ENVS:
        os.environ[env] = name


def netjail_cmd() -> list[str]:
    """The installed CLI (the `python -I -S` launcher `make setup` writes), as a user runs it."""
    script = Path(sys.executable).with_name("netjail")
    return [str(script)] if script.exists() else [sys.executable, "-m", "netjail.app.cli"]


def cgroup_mount() -> Path:
    from netjail.backends.system.cgroupfs import find_cgroup2

    found = find_cgroup2()
    if found is None:
        raise SystemExit("bench: cgroup2 is not mounted (the realistic jails name cgroups)")
    return Path(found.path)


@contextlib.contextmanager
def bench_cgroups(count: int) -> Iterator[list[str]]:
    """`count` empty cgroups under a parent of this process's own, as paths relative to the
    cgroup2 mount ("/netjail-bench-sets-PID/j0"); removed on exit (rules naming them first)."""
    mount = cgroup_mount()
    parent = f"netjail-bench-sets-{os.getpid()}"
    paths = [f"/{parent}/j{i}" for i in range(count)]
    made: list[Path] = []
    try:
        (mount / parent).mkdir()
        made.append(mount / parent)
        for p in paths:
            (mount / p.lstrip("/")).mkdir()
            made.append(mount / p.lstrip("/"))
        yield paths
    finally:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()


def realistic_jail(index: int, cgroup: str, allow: int = 3) -> JailRules:
    """A cgroup jail with marked existing sockets and an allow-list of `allow` CIDRs and `allow`
    CIDR:PORTs (tcp and udp) per family, both directions, as jails/rules.py builds them."""
    mark = (index + 1) << 24
    fams = ("inet", "inet6")
    out_sel = tuple(Match(f, cgroup=cgroup) for f in fams) + tuple(
        Match(f, mark=mark, mark_mask=MARK_MASK) for f in fams
    )
    in_sel = tuple(Match(f, mark=mark, mark_mask=MARK_MASK) for f in fams)
    out_allow: list[Match] = []
    in_allow: list[Match] = []
    for k in range(allow):
        nets = {"inet": f"10.{index}.{k}.0/24", "inet6": f"fd00:{index:x}:{k:x}::/48"}
        ported = {"inet": f"192.168.{index}.{k * 8}/29", "inet6": f"fd01:{index:x}:{k:x}::/64"}
        for f in fams:
            out_allow.append(Match(f, dst=nets[f]))
            in_allow.append(Match(f, src=nets[f]))
            for proto in ("tcp", "udp"):
                out_allow.append(Match(f, proto, dst=ported[f], dport=443 + k))
                in_allow.append(Match(f, proto, src=ported[f], sport=443 + k))
    return JailRules(
        f"real{index}",
        out_selectors=out_sel,
        in_selectors=in_sel,
        out_allow=tuple(out_allow),
        in_allow=tuple(in_allow),
    )


def realistic_jails(cgroups: list[str]) -> list[JailRules]:
    return [realistic_jail(i, cg) for i, cg in enumerate(cgroups)]


def nft_json(what: str = f"table {TABLE}") -> list[dict[str, object]]:
    done = subprocess.run(["nft", "-j", "list", *what.split()], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return []
    items: list[dict[str, object]] = json.loads(done.stdout)["nftables"]
    return items


def table_counts() -> tuple[int, int]:
    """(rules, set and map elements) in netjail's table: what a packet may be tested against."""
    rules = elements = 0
    for item in nft_json():
        if "rule" in item:
            rules += 1
        for kind in ("set", "map"):
            body = item.get(kind)
            if isinstance(body, dict):
                elements += len(body.get("elem", ()))
    return rules, elements


def nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)


class ReferenceTable:
    """`table inet NAME` with an output chain (priority 0), the bench's own: the one-rule
    references go in it, and it is deleted when done."""

    def __init__(self, name: str = "njbench-ref") -> None:
        self.name = name
        nft(
            f"add table inet {name}\n"
            f"add chain inet {name} output {{ type filter hook output priority 0; policy accept; }}\n"
        )

    def add_drop_cmd(self, port: int) -> list[str]:
        return ["nft", "add", "rule", "inet", self.name, "output", "udp", "dport", str(port), "drop"]

    def handle_of(self, port: int) -> int:
        """The handle of the drop rule for `port` (for `nft delete rule ... handle H`)."""
        out = subprocess.run(
            ["nft", "-a", "list", "chain", "inet", self.name, "output"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            if f"dport {port} drop" in line and "# handle " in line:
                return int(line.rsplit("# handle ", 1)[1])
        raise SystemExit(f"bench: no drop rule for port {port} in table inet {self.name}")

    def delete_cmd(self, handle: int) -> list[str]:
        return ["nft", "delete", "rule", "inet", self.name, "output", "handle", str(handle)]

    def flush(self) -> None:
        subprocess.run(["nft", "flush", "chain", "inet", self.name, "output"], check=True)

    def close(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", self.name], check=False)


def foreign_nft_rules(count: int) -> None:
    """Another tool's table (firewalld-like), so the generation id and the kernel's tables hold
    more than netjail's own."""
    lines = [
        "add table inet njbench-foreign",
        "add chain inet njbench-foreign forward { type filter hook forward priority 0; policy accept; }",
    ]
    lines += [
        f"add rule inet njbench-foreign forward ip daddr 172.17.{i // 250}.{i % 250 + 1} tcp dport 80 accept"
        for i in range(count)
    ]
    nft("\n".join(lines) + "\n")


def remove_state_dir(path: str, timeout: float = 10.0) -> None:
    """Remove a bench's NETJAIL_STATE_DIR once the watcher a CLI command started there has exited.
    It leaves with the last jail, but finishes its tick and the attempts log after giving up its
    pid file: removed before that, the directory comes back. It is found by its argument, this
    directory's own unique path, and waited for (not signalled)."""
    import shutil
    import time

    needle = os.fsencode(os.path.abspath(path))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        busy = needle in f.read().split(b"\0")
                except OSError:
                    continue
                if busy:
                    break
        if not busy:
            break
        time.sleep(0.1)
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(0)
