"""A kernel with one address family only: netjail filters that one, says so once, writes nothing
in the other.

The kernel here has both. The missing family is made missing for real in the CLI's process (and
the watcher it starts, which inherits it): a seccomp filter makes socket(AF_INET6, ...) fail with
EAFNOSUPPORT, which is what a kernel booted with `ipv6.disable=1` answers, to Python and to
libiptc's raw socket alike. netjail's own detection (firewall/families.py) then runs unchanged.
The traffic itself comes from peers outside the filter, counted at the receiver.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from netjail.backends.launch.netns import netns_name

from tests.conftest import CGROUP2, CGROUP_PARENT, Peer, python_for
from tests.integration.launch_support import PROBE, start_listener
from tests.integration.test_block import rises, settle_count

# How a missing family shows is libiptc's (its raw socket, IP6T_SO_GET_INFO), and so is what is
# read back per family (the -save tools); nftables reaches both families through one netlink table.
pytestmark = pytest.mark.backend("iptables")

WITHOUT_FAMILY = """
import errno, os, socket, sys
import pyseccomp as sc
f = sc.SyscallFilter(sc.ALLOW)
for name in sys.argv[1].split(","):
    family = {"inet6": socket.AF_INET6, "inet": socket.AF_INET}[name]
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.EQ, family))
f.load()
os.execv(sys.executable, [sys.executable, "-m", "netjail.app.cli", *sys.argv[2:]])
"""

NOTE = {"inet6": "only IPv4 is filtered", "inet": "only IPv6 is filtered"}
SAVE = {"inet": "iptables-legacy-save", "inet6": "ip6tables-legacy-save"}
HOST = {"inet6": "127.0.0.1", "inet": "::1"}  # the family still there


def without(family: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The netjail CLI on a kernel that lacks `family`."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*python_for(None), "-c", WITHOUT_FAMILY, family, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    return run


def netjail_rules(family: str) -> str:
    out = subprocess.run([SAVE[family]], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines() if "NJ-" in line or "NETJAIL" in line)


def counters(cli: Callable[..., subprocess.CompletedProcess[str]], jail: str) -> dict[str, Any]:
    out = cli("counters", "--json")
    assert out.returncode == 0, out.stderr
    return next(c for c in json.loads(out.stdout) if c["jail"] == jail)


@pytest.mark.parametrize("missing", ["inet6", "inet"])
def test_block_on_a_kernel_without_one_family(spawn_peer: Callable[..., Peer], missing: str) -> None:
    """Block cuts the sender (receiver's count frozen), an allowed destination stays reachable,
    counters rise, the note comes once, the missing family's table holds nothing of netjail's,
    and unblock / reset leave nothing."""
    cli = without(missing)
    host = HOST[missing]
    kept = "inet" if missing == "inet6" else "inet6"
    shut = spawn_peer("udp-recv", host, 0)
    open_ = spawn_peer("udp-recv", host, 0)
    target = f"[{host}]" if ":" in host else host
    sender = spawn_peer("udp-send-multi", f"{target}:{shut.info['lport']}", f"{target}:{open_.info['lport']}")
    assert rises(shut, "received") and rises(open_, "received")

    allowed = f"[{host}]:{open_.info['lport']}" if ":" in host else f"{host}:{open_.info['lport']}"
    out = cli("block", str(sender.pid), "--jail", "onefam", "--allow", allowed)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(NOTE[missing]) == 1, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr  # that one line and nothing else
    assert "can still reach" not in out.stderr  # the family is gone, not merely unfiltered

    frozen = settle_count(shut, "received")
    time.sleep(1.0)
    assert shut.value("received") == frozen, "packets crossed after block"
    assert rises(open_, "received", by=10), "the allowed destination was cut too"

    first = counters(cli, "onefam")
    time.sleep(1.0)
    later = counters(cli, "onefam")
    assert later["dropped_packets"] > first["dropped_packets"] > 0
    assert later["allowed_packets"] > first["allowed_packets"] > 0
    assert later[kept]["dropped_packets"] == later["dropped_packets"]
    assert later[missing]["dropped_packets"] == 0

    assert "NJ-O-onefam" in netjail_rules(kept)
    assert netjail_rules(missing) == ""

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [j["name"] for j in json.loads(listed.stdout)] == ["onefam"]
    assert NOTE[missing] not in listed.stderr  # block and run say it; list need not

    out = cli("unblock", str(sender.pid), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["removed_jails"] == ["onefam"]
    assert rises(shut, "received")
    assert netjail_rules(kept) == "" and netjail_rules(missing) == ""

    again = spawn_peer("udp-send", host, shut.info["lport"])
    assert cli("block", str(again.pid), "--jail", "onefam2").returncode == 0
    assert "NJ-O-onefam2" in netjail_rules(kept)
    out = cli("reset")
    assert out.returncode == 0, out.stderr
    assert netjail_rules(kept) == "" and netjail_rules(missing) == ""


def test_neither_family_refuses_block_and_writes_nothing(spawn_peer: Callable[..., Peer]) -> None:
    sender = spawn_peer("udp-send", "127.0.0.1", 9)
    out = without("inet,inet6")("block", str(sender.pid), "--jail", "nofam")
    assert out.returncode == 4, out.stderr
    assert out.stderr.startswith("netjail: no filter table opens here") and out.stderr.count("\n") == 1
    assert netjail_rules("inet") == "" and netjail_rules("inet6") == ""
    parent = CGROUP2 / CGROUP_PARENT
    assert not parent.is_dir() or not [p for p in parent.rglob("*nofam*") if p.is_dir()]


def test_doctor_names_the_families_netjail_covers() -> None:
    both = subprocess.run(
        [*python_for(None), "-m", "netjail.app.cli", "doctor"], capture_output=True, text=True, timeout=120
    )
    line = next(ln for ln in both.stdout.splitlines() if " families " in f" {ln} ")
    assert line.split()[0] == "ok" and "netjail filters IPv4 and IPv6" in line, line

    v4 = without("inet6")("doctor")
    line = next(ln for ln in v4.stdout.splitlines() if " families " in f" {ln} ")
    assert line.split()[0] == "ok" and "IPv4 only" in line and "no IPv6" in line, line
    # nothing probed in the family that is not there: the match checks still pass
    for check in ("xt_cgroup", "xt_owner", "legacy-rules"):
        got = next(ln for ln in v4.stdout.splitlines() if ln.split()[1:2] == [check])
        assert got.split()[0] == "ok", got


FORWARD6 = Path("/proc/sys/net/ipv6/conf/all/forwarding")


def test_run_netns_on_a_kernel_without_ipv6(make_host: Callable[..., Any]) -> None:
    """`run --netns --allow` filters IPv4 only, says so once, and gives the jail no IPv6 at all:
    an IPv6 route out of it would be forwarded past an allow-list that cannot see it."""
    cli = without("inet6")
    a, b = make_host(), make_host()
    listen_a = start_listener("0.0.0.0", netns=a.netns)
    listen_b = start_listener("0.0.0.0", netns=b.netns)
    forward6 = FORWARD6.read_text()
    try:
        argv = [*python_for("nobody"), str(PROBE), "--exit", "3"]
        argv += [f"connect:{a.addr4}:{listen_a.port}", f"connect:{b.addr4}:{listen_b.port}"]
        out = cli(
            "run",
            "--netns",
            "--link",
            "veth",
            "--jail",
            "ns4",
            "--keep",
            "--allow",
            a.addr4,
            "--user",
            "nobody",
            "--",
            *argv,
        )
        assert out.returncode == 3, out.stderr
        seen = json.loads(out.stdout.strip().splitlines()[-1])
        assert seen[f"connect:{a.addr4}:{listen_a.port}"] == {"errno": 0, "reply": "hello"}
        assert seen[f"connect:{b.addr4}:{listen_b.port}"]["errno"] != 0
        assert out.stderr.count(NOTE["inet6"]) == 1, out.stderr
        assert netjail_rules("inet6") == "" and "NJ-F-ns4" in netjail_rules("inet")
        assert FORWARD6.read_text() == forward6, "IPv6 forwarding switched on for a jail it cannot filter"
        addrs = subprocess.run(
            ["ip", "-n", netns_name("ns4"), "-6", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert addrs == "", addrs
        assert counters(cli, "ns4")["dropped_packets"] > 0
        assert cli("unblock", "--jail", "ns4").returncode == 0
        assert netjail_rules("inet") == ""
    finally:
        listen_a.stop()
        listen_b.stop()


# A kernel with IPv6 but without ip6_tables answers IP6T_SO_GET_INFO (64 at level IPPROTO_IPV6)
# with ENOPROTOOPT: no netfilter module registered that option. Everything else IPv6 works.
WITHOUT_IP6_TABLES = """
import errno, os, socket, sys
import pyseccomp as sc
f = sc.SyscallFilter(sc.ALLOW)
info = (sc.Arg(1, sc.EQ, socket.IPPROTO_IPV6), sc.Arg(2, sc.EQ, 64))
f.add_rule(sc.ERRNO(errno.ENOPROTOOPT), "getsockopt", *info)
f.load()
os.execv(sys.executable, [sys.executable, "-m", "netjail.app.cli", *sys.argv[1:]])
"""


def test_ipv6_without_ip6_tables_is_named_a_hole(spawn_peer: Callable[..., Peer]) -> None:
    """IPv6 that flows but cannot be filtered: block still cuts IPv4 and says plainly that the
    jailed process can still use IPv6; doctor warns."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*python_for(None), "-c", WITHOUT_IP6_TABLES, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    assert rises(recv, "received")
    out = cli("block", str(sender.pid), "--jail", "noip6t")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(NOTE["inet6"]) == 1, out.stderr
    assert "can still reach IPv6 addresses" in out.stderr and "insmod" in out.stderr  # libiptc's words
    frozen = settle_count(recv, "received")
    time.sleep(1.0)
    assert recv.value("received") == frozen
    assert counters(cli, "noip6t")["dropped_packets"] > 0
    assert netjail_rules("inet6") == ""

    doctor = cli("doctor")
    line = next(ln for ln in doctor.stdout.splitlines() if ln.split()[1:2] == ["families"])
    assert line.split()[0] == "warn" and "can still use IPv6" in line, line
    assert cli("reset").returncode == 0


def test_run_netns_allow_refuses_a_kernel_without_ipv4(make_host: Callable[..., Any]) -> None:
    """Its link always carries IPv4: unfiltered, forwarding would pass the allow-list by."""
    a = make_host()
    forward4 = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    out = without("inet")("run", "--netns", "--jail", "ns6", "--allow", a.addr4, "--", "true")
    assert out.returncode == 4, out.stderr
    assert "needs IPv4 filtering" in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward4
    assert netjail_rules("inet") == "" and netjail_rules("inet6") == ""
    assert (
        netns_name("ns6")
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
