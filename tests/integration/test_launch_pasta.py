"""Issue 10 B: a netns jail with an allow-list, linked by pasta, on a host whose FORWARD policy
is DROP (Docker's): it reaches the allowed host (TCP and UDP, counted at the receiver) and
nothing else, none of this host's own addresses, and changes nothing host-wide (sysctls,
FORWARD policy, chains: dumps compared before and after)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import firewall_probe
from tests.conftest import CGROUP2, Host, Peer, python_for
from tests.integration.launch_support import start_listener
from tests.integration.test_block import CLI, jail, settle_count

PROBE = Path(__file__).with_name("host_probe.py")
SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/ipv6/conf/default/forwarding",
)
SAVES = ("iptables-legacy-save", "ip6tables-legacy-save")


@pytest.fixture
def uplink(make_host: Callable[[], Host]) -> Iterator[Host]:
    """A test host that this namespace's default route goes through (pasta needs one)."""
    host = make_host()
    subprocess.run(["ip", "route", "add", "default", "via", host.addr4], check=True)
    yield host
    subprocess.run(["ip", "route", "del", "default", "via", host.addr4], capture_output=True)


@pytest.fixture
def docker_like() -> Iterator[None]:
    """What Docker leaves on a host: FORWARD policy DROP, FORWARD jumping to DOCKER-USER."""
    steps = (
        ["-N", "DOCKER-USER"],
        ["-A", "DOCKER-USER", "-j", "RETURN"],
        ["-I", "FORWARD", "-j", "DOCKER-USER"],
    )
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        for step in steps:
            subprocess.run([tool, "-w", *step], check=True)
        subprocess.run([tool, "-w", "-P", "FORWARD", "DROP"], check=True)
    yield
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        subprocess.run([tool, "-w", "-P", "FORWARD", "ACCEPT"], check=True)
        subprocess.run([tool, "-w", "-D", "FORWARD", "-j", "DOCKER-USER"], check=True)
        subprocess.run([tool, "-w", "-F", "DOCKER-USER"], check=True)
        subprocess.run([tool, "-w", "-X", "DOCKER-USER"], check=True)


def host_wide() -> tuple[str, dict[str, str]]:
    """Every legacy table of both families without counters or timestamps, netjail's jail parts of
    its nftables table, and the forwarding sysctls."""
    text = "".join(subprocess.run([t], capture_output=True, text=True, check=True).stdout for t in SAVES)
    text = re.sub(
        r"\[\d+:\d+\]", "", "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )
    text += "\n" + "\n".join(firewall_probe.nft_left())
    return text, {p: Path(p).read_text() for p in SYSCTLS if Path(p).exists()}


def run_probe(cli: CLI, *opts: str, actions: list[str]) -> dict[str, Any]:
    argv = [*python_for("nobody"), str(PROBE), *actions]
    out = cli("run", "--netns", *opts, "--user", "nobody", "--", *argv)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def state(state_dir: Path, name: str) -> dict[str, Any]:
    doc = json.loads((state_dir / "state.json").read_text())
    found: dict[str, Any] = next(j for j in doc["jails"] if j["name"] == name)
    return found


def gone(pid: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not os.path.exists(f"/proc/{pid}") or " Z " in Path(f"/proc/{pid}/stat").read_text():
            return True
        time.sleep(0.02)
    return False


def test_on_a_docker_host_pasta_reaches_the_allowed_host_only_and_changes_nothing_host_wide(
    cli: CLI,
    uplink: Host,
    make_host: Callable[[], Host],
    spawn_peer: Callable[..., Peer],
    docker_like: None,
    state_dir: Path,
) -> None:
    a, b = uplink, make_host()
    la, lb = start_listener("0.0.0.0", netns=a.netns), start_listener("0.0.0.0", netns=b.netns)
    ua, ub = (spawn_peer("udp-recv", "0.0.0.0", 0, netns=h.netns) for h in (a, b))
    before = host_wide()
    try:
        seen = run_probe(
            cli,
            "--jail",
            "pd",
            "--keep",
            "--allow",
            f"{a.addr4}/32",
            actions=[
                f"connect:{a.addr4}:{la.port}",
                f"connect:{b.addr4}:{lb.port}",
                f"udp:{a.addr4}:{ua.info['lport']}",
                f"udp:{b.addr4}:{ub.info['lport']}",
            ],
        )
        assert seen[f"connect:{a.addr4}:{la.port}"] == "hello", "the allowed host was not reached"
        assert seen[f"connect:{b.addr4}:{lb.port}"].startswith("errno"), seen
        assert lb.peers.empty(), "the other host saw a connection"
        assert settle_count(ua, "received") > 0, "no UDP datagram reached the allowed host"
        assert settle_count(ub, "received") == 0, "UDP reached a host not on the allow-list"
        info = jail(cli, "pd")
        assert info["link"] == "pasta"
        assert info["counters"]["allowed_packets"] > 0 and info["counters"]["dropped_packets"] > 0
        # while it exists: nothing in FORWARD, no NAT, no sysctl changed
        during, sysctls = host_wide()
        assert sysctls == before[1]
        assert "NETJAIL-FWD" not in during and "NETJAIL-NAT" not in during and "NJ-F-" not in during
        assert "nft chain nj-f-" not in during and "nft rule nat:" not in during, during
        assert re.findall(r"^:FORWARD DROP", during, re.M) == [":FORWARD DROP"] * 2
        pid = state(state_dir, "pd")["pasta_pid"]
        assert pid and Path(f"/proc/{pid}").exists()
        assert cli("unblock", "--jail", "pd").returncode == 0
        assert gone(pid), "pasta outlived its jail"
        assert host_wide() == before, "something host-wide differs after the jail is gone"
        assert list((CGROUP2 / os.environ["NETJAIL_CGROUP_PARENT"]).glob("**/pd")) == []
    finally:
        la.stop()
        lb.stop()


def test_pasta_reaches_none_of_this_hosts_addresses_even_inside_an_allowed_prefix(
    cli: CLI, uplink: Host, make_host: Callable[[], Host], spawn_peer: Callable[..., Peer]
) -> None:
    """10.199.0.0/16 holds this host's own 10.199.2.1 (our end of the link to b): pasta would
    deliver there through `lo`, which no allow RETURN names, so it is dropped."""
    b = make_host()
    here_tcp, lb = start_listener("0.0.0.0"), start_listener("0.0.0.0", netns=b.netns)
    here_udp = spawn_peer("udp-recv", "0.0.0.0", 0)
    try:
        seen = run_probe(
            cli,
            "--jail",
            "ph",
            "--keep",
            "--allow",
            "10.199.0.0/16",
            actions=[
                f"connect:{b.gw4}:{here_tcp.port}",
                f"udp:{b.gw4}:{here_udp.info['lport']}",
                f"connect:{b.addr4}:{lb.port}",
            ],
        )
        assert seen[f"connect:{b.addr4}:{lb.port}"] == "hello", "the allowed prefix does not work: void test"
        assert seen[f"udp:{b.gw4}:{here_udp.info['lport']}"] == 0, "the jail could not even send"
        assert seen[f"connect:{b.gw4}:{here_tcp.port}"].startswith("errno"), seen
        assert here_tcp.peers.empty(), "the jail reached this host over TCP"
        assert settle_count(here_udp, "received") == 0, "the jail reached this host over UDP"
        assert jail(cli, "ph")["counters"]["dropped_packets"] > 0
    finally:
        here_tcp.stop()
        lb.stop()


def test_a_pasta_that_died_is_noticed_and_the_jail_still_goes(
    cli: CLI, uplink: Host, state_dir: Path
) -> None:
    out = cli("run", "--netns", "--jail", "pk", "--keep", "--allow", f"{uplink.addr4}/32", "--", "true")
    assert out.returncode == 0, out.stderr
    pid = state(state_dir, "pk")["pasta_pid"]
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    said = ""
    end = time.monotonic() + 10
    while state(state_dir, "pk")["pasta_pid"] != 0 and time.monotonic() < end:
        listed = cli("list")  # reconciles, unless the watcher did just now (then it noted it)
        assert listed.returncode == 0
        said += listed.stderr
    log = (state_dir / "watcher.log").read_text() if (state_dir / "watcher.log").exists() else ""
    assert state(state_dir, "pk")["pasta_pid"] == 0, "the dead link was not noticed"
    assert f"its link (pasta, PID {pid}) exited" in said + log, (said, log)
    assert cli("unblock", "--jail", "pk").returncode == 0
    assert list((CGROUP2 / os.environ["NETJAIL_CGROUP_PARENT"]).glob("**/pk")) == []


def test_veth_on_a_docker_host_says_what_it_changes_host_wide(cli: CLI, docker_like: None) -> None:
    before = host_wide()
    out = cli("run", "--netns", "--link", "veth", "--allow", "10.9.9.0/24", "--", "true")
    assert out.returncode == 0, out.stderr
    assert "FORWARD policy is DROP" in out.stderr and "Docker" in out.stderr, out.stderr
    if before[1]["/proc/sys/net/ipv4/ip_forward"].strip() == "0":
        assert "net.ipv4.ip_forward" in out.stderr, out.stderr
    assert host_wide() == before, "the veth jail left something behind"


def test_link_needs_netns_with_an_allow_list(cli: CLI) -> None:
    out = cli("run", "--netns", "--link", "pasta", "--", "true")
    assert out.returncode == 2 and "--link applies" in out.stderr
    out = cli("run", "--gid", "--link", "veth", "--allow", "10.0.0.1", "--", "true")
    assert out.returncode == 2 and "--link applies" in out.stderr


def test_doctor_names_the_forward_policy_docker_and_the_link(
    cli: CLI, uplink: Host, docker_like: None
) -> None:
    out = cli("doctor", "--json")
    assert out.returncode == 0, out.stderr
    check = next(c for c in json.loads(out.stdout) if c["name"] == "netns-link")
    assert check["status"] == "ok", check
    assert "pasta" in check["detail"] and "no forwarding, NAT or FORWARD rule" in check["detail"]
    assert "IPv4 (xtables-legacy) DROP" in check["detail"] and "IPv6 (xtables-legacy) DROP" in check["detail"]
    assert "DOCKER-USER chain): present" in check["detail"]


def test_a_pasta_jail_whose_state_was_lost_is_adopted_and_its_pasta_ended(
    cli: CLI, uplink: Host, state_dir: Path
) -> None:
    out = cli("run", "--netns", "--jail", "pa", "--keep", "--allow", f"{uplink.addr4}/32", "--", "true")
    assert out.returncode == 0, out.stderr
    pid, mark = state(state_dir, "pa")["pasta_pid"], state(state_dir, "pa")["mark"]
    assert mark, "a pasta jail has no mark: its incoming traffic is not filtered"
    (state_dir / "state.json").unlink()  # adopted back from the kernel (by this `list` or the watcher)
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    (info,) = json.loads(listed.stdout)
    assert (info["name"], info["strategy"], info["link"]) == ("pa", "netns", "pasta")
    assert state(state_dir, "pa")["pasta_pid"] == pid
    # pasta's sockets still carry the mark: the incoming dispatch to its allow-list stays
    assert state(state_dir, "pa")["mark"] == mark
    rules = firewall_probe.rules("pa")
    assert rules is not None and mark in {m.mark for m in rules.in_selectors}, rules
    assert cli("unblock", "--jail", "pa").returncode == 0
    assert gone(pid), "the adopted jail's pasta outlived it"


def test_without_pasta_run_names_every_host_wide_change_of_the_veth_link(docker_like: None) -> None:
    from netjail.backends.launch.host_forwarding import veth_notes

    notes = " ".join(veth_notes("jx", pasta_missing=True))
    assert "pasta is not installed (install passt" in notes
    assert "FORWARD policy is DROP (IPv4 (xtables-legacy), IPv6 (xtables-legacy), Docker)" in notes
    off = [p for p in SYSCTLS[:2] if Path(p).read_text().strip() == "0"]
    for path in off:
        name = "net.ipv4.ip_forward" if "ipv4" in path else "net.ipv6.conf.all.forwarding"
        assert name in notes, notes


def test_without_a_default_route_pasta_is_refused_in_one_line_and_nothing_is_left(cli: CLI) -> None:
    from tests.integration.test_run import leftovers

    out = cli("run", "--netns", "--allow", "10.9.9.0/24", "--", "true")
    assert out.returncode == 4, out.stderr
    assert out.stderr.splitlines() == [
        "netjail: pasta (the default link of a netns jail) needs a default route here and this "
        "namespace has none: add one, or use --link veth"
    ]
    assert leftovers() == []


SEND = (
    "import socket, sys\n"
    "src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "with socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
    "    s.bind((src, 0))\n"
    "    for _ in range(20):\n"
    "        s.sendto(b'unasked', (dst, port))\n"
)


def start_run(opts: list[str], argv: list[str]) -> subprocess.Popen[str]:
    """`netjail run OPTS -- ARGV` in the background, its output kept."""
    cmd = [sys.executable, "-m", "netjail.app.cli", "run", *opts, "--", *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def send_udp(src: str, dst: str, port: int, netns: str | None = None) -> None:
    """20 datagrams from `src` (any port) to dst:port (IPv4 or IPv6), from a test host's netns or
    this one."""
    cmd = [sys.executable, "-c", SEND, src, dst, str(port)]
    subprocess.run(["ip", "netns", "exec", netns, *cmd] if netns else cmd, check=True, timeout=10)


def bound_here(port: int, timeout: float = 10.0) -> bool:
    """Whether a UDP socket of this namespace holds `port` (pasta's, once the jail sent from it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            rows = Path(table).read_text().splitlines()[1:]
            if any(r.split()[1].endswith(f":{port:04X}") for r in rows):
                return True
        time.sleep(0.05)
    return False


def test_pasta_udp_port_the_jail_sent_from_takes_datagrams_from_allowed_hosts_only(
    cli: CLI, uplink: Host, make_host: Callable[[], Host], spawn_peer: Callable[..., Peer]
) -> None:
    """pasta keeps its UDP sockets unconnected: once the jail sent from port P, pasta holds
    0.0.0.0:P here and any host's datagram to P would be passed on to the jail. Marked at
    creation (its link cgroup), pasta's sockets meet the jail's allow-list coming in: the
    allowed host's datagrams arrive, another host's and this host's own (an address inside
    the allowed prefix, through `lo`) are dropped and counted; TCP to the allowed host works."""
    a, b = uplink, make_host()
    ua = spawn_peer("udp-recv", "0.0.0.0", 0, netns=a.netns)
    la = start_listener("0.0.0.0", netns=a.netns)
    lport = 20000 + os.getpid() % 20000
    wait = f"udp-wait:{lport}:{a.addr4}:{ua.info['lport']}:6"
    argv = [*python_for("nobody"), str(PROBE), f"connect:{a.addr4}:{la.port}", wait]
    opts = ["--netns", "--jail", "pu", "--keep", "--allow", "10.199.1.0/24", "--user", "nobody"]
    run = start_run(opts, argv)
    try:
        assert bound_here(lport), "pasta never held the port the jail sent from: void test"
        assert settle_count(ua, "received") == 3, "the jail's datagrams did not reach the allowed host"
        dropped = jail(cli, "pu")["counters"]["dropped_packets"]
        send_udp("0.0.0.0", b.gw4, lport, netns=b.netns)  # not on the allow-list
        send_udp(a.gw4, a.gw4, lport)  # this host, from inside the allowed prefix (via lo)
        send_udp("127.0.0.1", "127.0.0.1", lport)  # this host's loopback
        send_udp("0.0.0.0", a.gw4, lport, netns=a.netns)  # the allowed host
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        la.stop()
    assert run.returncode == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen[f"connect:{a.addr4}:{la.port}"] == "hello", "TCP to the allowed host failed"
    got = seen[wait]
    assert got.get(a.addr4) == 20, f"the allowed host's datagrams did not all arrive: {got}"
    assert set(got) == {a.addr4}, f"datagrams from hosts not on the allow-list reached the jail: {got}"
    after = jail(cli, "pu")["counters"]["dropped_packets"]
    assert after - dropped >= 20 * 3, (dropped, after)
    assert cli("unblock", "--jail", "pu").returncode == 0
