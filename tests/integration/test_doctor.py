"""`netjail doctor` on this machine: the real CLI as root and as nobody, and the real probes.

Everything runs in `make test`'s private network namespace or in a netns created here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends.doctor import probes as doctor_probes

# the iptables backend's doctor checks (xt_cgroup, xtables probes, legacy-rules); nftables' differ
pytestmark = pytest.mark.backend("iptables")

NAMES = [
    "root",
    "cgroup2",
    "backends",
    "families",
    "xt_cgroup",
    "xt_owner",
    "iptables",
    "legacy-rules",
    "nft-rules",
    "marks",
    "sock-destroy",
    "pidfd_getfd",
    "ipset",
    "attempts",
    "early-demux",
    "pid1",
    "firewalls",
    "netns-link",
    "python-iptables",
    "pyroute2",
]
CLI = Callable[..., subprocess.CompletedProcess[str]]


def by_name(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    checks = json.loads(out.stdout)
    assert [c["name"] for c in checks] == NAMES
    assert all(set(c) == {"name", "status", "detail", "marks"} for c in checks)
    assert all(c["marks"] == [] for c in checks if c["name"] != "marks")
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
    # this test's namespace has no default route: pasta could not link a netns jail (warn)
    linked = [n for n in NAMES if n != "netns-link"]
    assert {n: c[n]["status"] for n in linked} == dict.fromkeys(linked, "ok"), c
    assert c["netns-link"]["status"] == "warn"
    assert c["netns-link"]["detail"].startswith("pasta needs a default route and there is none: --link veth")
    assert "IPv4 (xtables-legacy) ACCEPT" in c["netns-link"]["detail"]
    assert c["root"]["detail"].startswith("root, CapEff ")
    assert c["cgroup2"]["detail"] == "hybrid mount at /sys/fs/cgroup/unified"
    assert c["families"]["detail"] == "netjail filters IPv4 and IPv6"
    own_cgroup = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].split()[0]
    assert f"`-m cgroup --path {own_cgroup}` rule loaded (IPv4, IPv6)" in c["xt_cgroup"]["detail"]
    assert "`-m owner --uid-owner 0` rule loaded (IPv4, IPv6)" in c["xt_owner"]["detail"]
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.split()
    assert f"`iptables` is {version[1]} {version[2]}" in c["iptables"]["detail"]  # v1.8.9 (nf_tables)
    assert c["legacy-rules"]["detail"] == "no foreign rules in xtables-legacy"
    assert (
        c["marks"]["detail"] == "no marks in use (rules, ip rule, sockets) overlap netjail's range 0xff000000"
    )
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
    for probe in ("families", "xt_cgroup", "xt_owner"):
        assert c[probe]["status"] == "warn"
        assert c[probe]["detail"].startswith("cannot probe without root")
    assert c["legacy-rules"] == {
        "name": "legacy-rules",
        "status": "warn",
        "detail": "cannot read the tables without root",
        "marks": [],
    }
    assert c["marks"]["status"] == "warn" and c["marks"]["detail"].endswith(
        "; not read: cannot read the tables without root"
    )
    assert c["nft-rules"]["status"] == "warn"
    assert c["firewalls"]["status"] == "warn"
    assert (
        c["netns-link"]["status"] == "warn" and "unread: cannot read the tables" in c["netns-link"]["detail"]
    )
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


# Marks other programs use, each overlapping netjail's default range 0xff000000 (bits 24-31)
# and clear of 0x00ff0000: policy routing, a mangle-table MARK rule, an nf_tables comparison.
FOREIGN_MARKS = {
    "ip rule (IPv4) pref 100: fwmark 0x1000000 lookup 100": (
        "ip rule add fwmark 0x1000000 table 100 pref 100",
        "ip rule del pref 100",
    ),
    "ip rule (IPv6) pref 100: fwmark 0x5000000/0xff000000 lookup 100": (
        "ip -6 rule add fwmark 0x5000000/0xff000000 table 100 pref 100",
        "ip -6 rule del pref 100",
    ),
    "iptables-legacy IPv4 mangle OUTPUT rule 1: -j MARK --set-xmark 0x2000000/0xff000000": (
        "iptables-legacy -t mangle -A OUTPUT -j MARK --set-xmark 0x2000000/0xff000000",
        "iptables-legacy -t mangle -D OUTPUT -j MARK --set-xmark 0x2000000/0xff000000",
    ),
    "nft inet njmarks out handle 2: meta mark & 0xff000000 == 0x3000000": (
        "nft add table inet njmarks\0nft add chain inet njmarks out { type filter hook output priority 0 ; }"
        "\0nft add rule inet njmarks out meta mark and 0xff000000 == 0x3000000 counter",
        "nft delete table inet njmarks",
    ),
}


def _doctor_marks(netns: str, mask: str | None = None) -> tuple[int, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k != "NETJAIL_MARK_MASK"}
    if mask is not None:
        env["NETJAIL_MARK_MASK"] = mask
    argv = [sys.executable, "-m", "netjail.app.cli", "doctor", "--json"]
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stderr == ""
    return out.returncode, by_name(out)["marks"]


# A process holding a UDP socket with a mark of its own (SO_MARK, as a VPN client sets it).
MARKED_SOCKET = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x6000000)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_doctor_fails_on_marks_in_netjails_range(netns: str) -> None:
    rc, clean = _doctor_marks(netns)
    assert (rc, clean["status"], clean["marks"]) == (0, "ok", [])
    holder = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", MARKED_SOCKET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(holder.stdout.readline())  # type: ignore[union-attr]
        inode = next(
            os.stat(f"/proc/{holder.pid}/fd/{fd}").st_ino
            for fd in os.listdir(f"/proc/{holder.pid}/fd")
            if os.readlink(f"/proc/{holder.pid}/fd/{fd}").startswith("socket:")
        )
        comm = Path(f"/proc/{holder.pid}/comm").read_text().strip()
        sock_where = f"socket:[{inode}] udp 127.0.0.1:{port} of PID {holder.pid} ({comm})"
        _foreign_marks_fail_then_pass(netns, sock_where)
    finally:
        holder.kill()
        holder.wait()
    assert _doctor_marks(netns) == (0, clean)


def _foreign_marks_fail_then_pass(netns: str, sock_where: str) -> None:
    for add, _ in FOREIGN_MARKS.values():
        for cmd in add.split("\0"):
            done = in_netns(netns, *shlex.split(cmd))
            assert done.returncode == 0, f"{cmd}: {done.stderr}"
    rc, marks = _doctor_marks(netns)
    assert rc == 1 and marks["status"] == "fail", marks
    assert isinstance(marks["detail"], str) and isinstance(marks["marks"], list)
    assert marks["detail"].startswith("5 of 5 marks in use overlap netjail's range 0xff000000")
    where = {m["where"]: m["overlaps"] for m in marks["marks"]}
    assert where == dict.fromkeys([*FOREIGN_MARKS, sock_where], True)
    assert {(m["value"], m["mask"], m["kind"]) for m in marks["marks"]} == {
        (0x1000000, 0xFFFFFFFF, "match"),
        (0x5000000, 0xFF000000, "match"),
        (0x2000000, 0xFF000000, "set"),
        (0x3000000, 0xFF000000, "match"),
        (0x6000000, 0xFFFFFFFF, "socket"),
    }
    human = in_netns(netns, sys.executable, "-m", "netjail.app.cli", "doctor")
    assert human.returncode == 1
    assert "overlaps 0x2000000/0xff000000  iptables-legacy IPv4 mangle OUTPUT rule 1" in human.stdout
    # a range nobody else uses: listed, not failed
    rc, moved = _doctor_marks(netns, "0x00ff0000")
    assert (rc, moved["status"]) == (0, "ok"), moved
    assert moved["detail"] == "5 marks in use, none in netjail's range 0xff0000"
    for _, remove in FOREIGN_MARKS.values():
        done = in_netns(netns, *shlex.split(remove))
        assert done.returncode == 0, f"{remove}: {done.stderr}"


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


def test_doctor_says_whether_the_attempts_log_can_read_its_group(cli: CLI) -> None:
    """ok when the NFLOG group binds (and is let go: a second doctor gets it too); warn, naming
    the holder, while another reader has it."""
    from netjail.backends.attempts import prefix
    from netjail.backends.attempts.nflog import NflogGroup

    for _ in range(2):
        checks = by_name(cli("doctor", "--json"))
        assert checks["attempts"]["status"] == "ok", checks["attempts"]
    holder = NflogGroup(prefix.group(), snaplen=64)
    try:
        held = by_name(cli("doctor", "--json"))["attempts"]
        assert held["status"] == "warn" and "held by another reader" in held["detail"], held
    finally:
        holder.close()
    off = by_name(cli("doctor", "--json", env={"NETJAIL_ATTEMPTS": "off"}))["attempts"]
    assert off["status"] == "warn" and "NETJAIL_ATTEMPTS=off" in off["detail"]
