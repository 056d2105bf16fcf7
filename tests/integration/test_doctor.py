"""`netjail doctor` on this machine: the real CLI as root and as nobody, and the real probes.

Everything runs in `make test`'s private network namespace or in a netns created here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends import doctor_probes

NAMES = [
    "root",
    "cgroup2",
    "xt_cgroup",
    "xt_owner",
    "iptables",
    "legacy-rules",
    "nft-rules",
    "sock-destroy",
    "pidfd_getfd",
    "ipset",
    "early-demux",
    "pid1",
    "firewalls",
    "python-iptables",
    "pyroute2",
]
CLI = Callable[..., subprocess.CompletedProcess[str]]


def by_name(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    checks = json.loads(out.stdout)
    assert [c["name"] for c in checks] == NAMES
    assert all(set(c) == {"name", "status", "detail"} for c in checks)
    return {c["name"]: c for c in checks}


def legacy_save() -> str:
    """Both families' legacy rules, without the timestamped comment lines and without the
    policy counters (":INPUT ACCEPT [2:212]"), which move with any traffic in the namespace."""
    return "".join(
        re.sub(r"^(:\S+ (?:ACCEPT|DROP)) \[\d+:\d+\]$", r"\1", line.rstrip("\n")) + "\n"
        for tool in ("iptables-legacy-save", "ip6tables-legacy-save")
        for line in subprocess.run([tool], capture_output=True, text=True, check=True).stdout.splitlines(True)
        if not line.startswith("#")
    )


def sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def test_doctor_as_root_reports_this_machine(cli: CLI) -> None:
    out = cli("doctor", "--json")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # libxtables' revision warnings stay out of the user's terminal
    c = by_name(out)
    assert {n: c[n]["status"] for n in NAMES} == dict.fromkeys(NAMES, "ok"), c
    assert c["root"]["detail"].startswith("root, CapEff ")
    assert c["cgroup2"]["detail"] == "hybrid mount at /sys/fs/cgroup/unified"
    own_cgroup = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].split()[0]
    assert f"`-m cgroup --path {own_cgroup}` rule loaded (IPv4, IPv6)" in c["xt_cgroup"]["detail"]
    assert "`-m owner --uid-owner 0` rule loaded (IPv4, IPv6)" in c["xt_owner"]["detail"]
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.split()
    assert f"`iptables` is {version[1]} {version[2]}" in c["iptables"]["detail"]  # v1.8.9 (nf_tables)
    assert c["legacy-rules"]["detail"] == "no foreign rules in xtables-legacy"
    assert c["sock-destroy"]["detail"].startswith("CONFIG_INET_DIAG_DESTROY=y (/proc/config.gz)")
    tcp, udp = sysctl("net.ipv4.tcp_early_demux"), sysctl("net.ipv4.udp_early_demux")
    assert c["early-demux"]["detail"].startswith(f"tcp_early_demux={tcp}, udp_early_demux={udp}")
    assert c["pid1"]["detail"].startswith(Path("/proc/1/comm").read_text().strip() + ",")
    # The probes removed their chains from this namespace's tables.
    assert doctor_probes.PROBE_CHAIN_PREFIX not in legacy_save()


def test_doctor_human_output(cli: CLI) -> None:
    out = cli("doctor")
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines] == NAMES
    detail_column = {len(line) - len(line[6:].split(maxsplit=1)[1]) for line in lines}
    assert detail_column == {6 + len("python-iptables") + 2}  # every detail starts in one column
    assert lines[1] == "ok    cgroup2          hybrid mount at /sys/fs/cgroup/unified"


def test_doctor_as_nobody_cannot_probe(cli: CLI) -> None:
    before = legacy_save()
    out = cli("doctor", "--json", user="nobody")
    assert out.returncode == 0, out.stderr  # warnings only: read-only use works without root
    assert "Traceback" not in out.stderr
    c = by_name(out)
    assert c["root"]["status"] == "warn"
    assert c["root"]["detail"].startswith("not root (uid 65534): read-only")
    for probe in ("xt_cgroup", "xt_owner"):
        assert c[probe]["status"] == "warn"
        assert c[probe]["detail"].startswith("cannot probe without root")
    assert c["legacy-rules"] == {
        "name": "legacy-rules",
        "status": "warn",
        "detail": "cannot read the tables without root",
    }
    assert c["nft-rules"]["status"] == "warn"
    assert c["firewalls"]["status"] == "warn"
    assert c["cgroup2"]["detail"] == "hybrid mount at /sys/fs/cgroup/unified"  # needs no privilege
    assert legacy_save() == before


@pytest.fixture
def netns(uniq: Callable[[str], str]) -> Iterator[str]:
    name = uniq("njdoc")
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


def in_netns(netns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    # nsenter, not `ip netns exec`: that remounts /sys, which would hide the cgroup2 mount.
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True, text=True, timeout=60
    )


def test_doctor_sees_foreign_rules_and_firewall_managers(netns: str) -> None:
    for cmd in (
        "iptables-legacy -N DOCKER-USER",
        "iptables-legacy -A FORWARD -j DOCKER-USER",
        "iptables-legacy -A OUTPUT -d 10.199.250.1 -j ACCEPT",
        "ip6tables-legacy -A INPUT -s fd00:199:250::1 -j DROP",
        "iptables-legacy -N NETJAIL-OUT",  # netjail's own: not foreign
        "iptables-legacy -I OUTPUT -j NETJAIL-OUT",
        "iptables-legacy -A NETJAIL-OUT -m cgroup --path / -j RETURN",
        "nft add table inet firewalld",
        "nft add chain inet firewalld filter_OUTPUT { type filter hook output priority 10 ; }",
        "nft add rule inet firewalld filter_OUTPUT ip daddr 10.199.250.1 accept",
    ):
        done = in_netns(netns, *cmd.split())
        assert done.returncode == 0, f"{cmd}: {done.stderr}"
    out = in_netns(netns, sys.executable, "-m", "netjail.app.cli", "doctor", "--json")
    c = by_name(out)
    assert out.returncode == 0, out.stderr
    assert c["legacy-rules"]["status"] == "ok"
    assert c["legacy-rules"]["detail"].startswith(
        "3 foreign rules in xtables-legacy (IPv4 filter: 2, IPv6 filter: 1); 2 of netjail's"
    )
    assert c["nft-rules"]["detail"].startswith("1 nf_tables rules (inet firewalld: 1)")
    assert c["firewalls"]["status"] == "warn"
    assert c["firewalls"]["detail"].startswith("Docker (chains), firewalld (nft table)")
    assert doctor_probes.PROBE_CHAIN_PREFIX not in in_netns(netns, "iptables-legacy-save").stdout


def test_xt_probe_refuses_a_missing_cgroup_and_leaves_nothing() -> None:
    before = legacy_save()
    errors = doctor_probes.probe_xt_match("cgroup", "/netjail-doctor-no-such-cgroup")
    assert set(errors) == {"IPv4", "IPv6"}  # the kernel resolves --path when the rule is loaded
    assert errors == {"IPv4": "can't commit: Invalid argument", "IPv6": "can't commit: Invalid argument"}
    assert legacy_save() == before
    assert doctor_probes.probe_xt_match("cgroup", "/") == {}
    assert doctor_probes.probe_xt_match("owner", str(os.geteuid())) == {}
    assert legacy_save() == before


def test_xt_probe_removes_probe_chains_of_dead_probes_only() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead, alive = f"NETJAIL-PROBE-{gone.pid}", "NETJAIL-PROBE-1"
    for chain in (dead, alive):
        subprocess.run(["iptables-legacy", "-N", chain], check=True)
    try:
        assert doctor_probes.probe_xt_match("owner", "0") == {}
        chains = legacy_save()
        assert f":{dead} " not in chains
        assert f":{alive} " in chains  # PID 1 runs: its chain is not a leftover of ours
    finally:
        subprocess.run(["iptables-legacy", "-X", alive], check=True)
        subprocess.run(["iptables-legacy", "-X", dead], capture_output=True)


def test_sock_destroy_probe_kills_only_its_own_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        bystander = socket.create_connection(server.getsockname(), timeout=5)
        accepted, _ = server.accept()
        with bystander, accepted:
            assert doctor_probes.probe_sock_destroy() is None
            bystander.sendall(b"still here")
            assert accepted.recv(64) == b"still here"
            assert bystander.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
