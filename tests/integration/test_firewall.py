"""The python-iptables firewall backend against the real kernel (private netns, make test).

Rules are checked with iptables-legacy-save / ip6tables-legacy-save text, counters with real
datagrams sent on loopback, cgroup selectors with a real process inside a real cgroup.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends.errors import BadInput, OperationFailed
from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.firewall.iptc_backend import IptcFirewall, cgroup2_mount
from netjail.backends.firewall.matches import canonical_rules
from netjail.backends.model import Counters

from tests.conftest import PEERS, Peer

# python-iptables' own layout: rule positions, lanes, the xtables lock and blob
pytestmark = pytest.mark.backend("iptables")

SAVE = {"inet": "iptables-legacy-save", "inet6": "ip6tables-legacy-save"}
TOOL = {"inet": "iptables-legacy", "inet6": "ip6tables-legacy"}
LOOPBACK = {"inet": "127.0.0.1", "inet6": "::1"}
AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check)


def save(family: str, counters: bool = False) -> list[str]:
    out = sh(SAVE[family], "-t", "filter", *(["-c"] if counters else [])).stdout
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    if counters:
        return lines
    # policy counters (":INPUT ACCEPT [2:212]") move with any traffic in the namespace
    return [re.sub(r"^(:\S+ (?:ACCEPT|DROP)) \[\d+:\d+\]$", r"\1", line) for line in lines]


def is_ours(line: str) -> bool:
    return "NETJAIL-" in line or "NJ-" in line


def ours(family: str) -> list[str]:
    return [line for line in save(family) if is_ours(line)]


def foreign(family: str) -> list[str]:
    return [line for line in save(family) if not is_ours(line)]


def first_rule(family: str, chain: str) -> str:
    return next(line for line in save(family) if line.startswith(f"-A {chain} "))


def flush_all() -> None:
    for family in TOOL.values():
        sh(family, "-w", "-F", check=False)
        sh(family, "-w", "-X", check=False)


@pytest.fixture
def fw() -> Iterator[IptcFirewall]:
    flush_all()
    firewall = IptcFirewall()
    yield firewall
    firewall.reset()
    flush_all()


@pytest.fixture
def cgroup(uniq: Callable[[str], str]) -> Iterator[tuple[Path, str]]:
    """(directory, path relative to the cgroup2 root) of a fresh cgroup; removed afterwards."""
    root = cgroup2_mount()
    assert root is not None, "cgroup2 is not mounted"
    rel = f"/netjail-test-{uniq('cg')}"
    path = root / rel.lstrip("/")
    path.mkdir()
    yield path, rel
    for _ in range(50):
        try:
            path.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:  # EBUSY while killed members are reaped
            time.sleep(0.05)
    assert not path.exists(), f"could not remove test cgroup {path}"


def udp_pair(family: str) -> tuple[socket.socket, socket.socket, int]:
    """(receiver, sender, receiver's port) on loopback."""
    rx = socket.socket(AF[family], socket.SOCK_DGRAM)
    rx.bind((LOOPBACK[family], 0))
    rx.setblocking(False)
    tx = socket.socket(AF[family], socket.SOCK_DGRAM)
    return rx, tx, rx.getsockname()[1]


def send(tx: socket.socket, family: str, port: int, n: int) -> int:
    """Send n datagrams; returns how many the kernel refused (EPERM: dropped in OUTPUT)."""
    refused = 0
    for _ in range(n):
        try:
            tx.sendto(b"x" * 100, (LOOPBACK[family], port))
        except PermissionError:
            refused += 1
    return refused


def drain(rx: socket.socket, settle: float = 0.1) -> int:
    time.sleep(settle)
    got = 0
    while True:
        try:
            rx.recv(2048)
            got += 1
        except BlockingIOError:
            return got


def add_foreign_rules(tag: int) -> None:
    """Rules of "someone else": built-in chains, a user chain and a jump to it."""
    for family, net in (("inet", f"10.99.{tag}."), ("inet6", f"fd00:99:{tag}::")):
        tool = TOOL[family]
        sh(tool, "-w", "-A", "OUTPUT", "-d", f"{net}1", "-j", "ACCEPT")
        sh(tool, "-w", "-I", "INPUT", "1", "-s", f"{net}2", "-j", "ACCEPT")
        if sh(tool, "-w", "-N", "USERCHAIN", check=False).returncode == 0:
            sh(tool, "-w", "-A", "OUTPUT", "-j", "USERCHAIN")
        sh(tool, "-w", "-A", "USERCHAIN", "-s", f"{net}3", "-p", "tcp", "--dport", "22", "-j", "RETURN")
        sh(tool, "-w", "-A", "FORWARD", "-d", f"{net}4", "-j", "DROP")


WEB = JailRules(
    "web",
    out_selectors=(Match("inet", "udp", dport=5353), Match("inet6", "tcp", dst="fd00:1::/64")),
    in_selectors=(Match("inet", "tcp", dport=8080),),
    out_allow=(Match("inet", "udp", dst="127.0.0.53", dport=53),),
)


def log(lane: str) -> str:
    """A jail chain's copy to the attempts log, just before its DROP (docs/attempts.md)."""
    return (
        f"-A NJ-{lane.upper()}-web -m limit --limit 200/sec --limit-burst 400 -j NFLOG"
        f' --nflog-prefix "netjail:{lane}:web" --nflog-group 5770 --nflog-size 384'
    )


def test_sync_creates_exactly_the_expected_rules(fw: IptcFirewall) -> None:
    fw.sync_jail(WEB)
    assert ours("inet") == [
        ":NETJAIL-IN - [0:0]",
        ":NETJAIL-OUT - [0:0]",
        ":NJ-I-web - [0:0]",
        ":NJ-O-web - [0:0]",
        "-A INPUT -m comment --comment netjail -j NETJAIL-IN",
        "-A OUTPUT -m comment --comment netjail -j NETJAIL-OUT",
        "-A NETJAIL-IN -p tcp -m tcp --dport 8080 -j NJ-I-web",
        "-A NETJAIL-OUT -p udp -m udp --dport 5353 -j NJ-O-web",
        log("i"),
        "-A NJ-I-web -j DROP",
        "-A NJ-O-web -d 127.0.0.53/32 -p udp -m udp --dport 53 -j RETURN",
        log("o"),
        "-A NJ-O-web -j DROP",
    ]
    assert ours("inet6") == [
        ":NETJAIL-IN - [0:0]",
        ":NETJAIL-OUT - [0:0]",
        ":NJ-I-web - [0:0]",
        ":NJ-O-web - [0:0]",
        "-A INPUT -m comment --comment netjail -j NETJAIL-IN",
        "-A OUTPUT -m comment --comment netjail -j NETJAIL-OUT",
        "-A NETJAIL-OUT -d fd00:1::/64 -p tcp -j NJ-O-web",
        log("i"),
        "-A NJ-I-web -j DROP",
        log("o"),
        "-A NJ-O-web -j DROP",
    ]
    assert all("FORWARD" not in line for f in TOOL for line in ours(f))  # no fwd selectors: no FWD
    assert canonical_rules(fw.read_jail("web")) == canonical_rules(WEB)  # type: ignore[arg-type]
    assert fw.jail_names() == {"web"}


def test_forward_chains_only_while_a_jail_uses_them(fw: IptcFirewall) -> None:
    fw.sync_jail(JailRules("gw", fwd_selectors=(Match("inet", src="10.199.1.0/24", in_iface="njv+"),)))
    assert "-A FORWARD -m comment --comment netjail -j NETJAIL-FWD" in ours("inet")
    assert "-A NETJAIL-FWD -s 10.199.1.0/24 -i njv+ -j NJ-F-gw" in ours("inet")
    assert ":NJ-F-gw - [0:0]" in ours("inet6")
    fw.sync_jail(JailRules("gw", out_selectors=(Match("inet", "tcp", dport=1),)))
    assert not [line for f in TOOL for line in ours(f) if "FWD" in line or "NJ-F-" in line]


def test_foreign_rules_survive_sync_remove_and_reset(fw: IptcFirewall) -> None:
    add_foreign_rules(1)
    before = {f: foreign(f) for f in TOOL}
    fw.sync_jail(WEB)
    fw.sync_jail(JailRules("fwd", fwd_selectors=(Match("inet6", dst="fd00:2::/64"),)))
    assert {f: foreign(f) for f in TOOL} == before
    add_foreign_rules(2)  # more foreign rules while netjail's are in place
    before = {f: foreign(f) for f in TOOL}
    fw.sync_jail(JailRules("web", out_selectors=(Match("inet", "udp", dport=1),)))
    assert {f: foreign(f) for f in TOOL} == before
    fw.remove_jail("web")
    assert {f: foreign(f) for f in TOOL} == before
    fw.reset()
    assert {f: save(f) for f in TOOL} == before  # nothing of ours is left either
    assert fw.jail_names() == set()


def test_jump_moved_back_to_the_top(fw: IptcFirewall) -> None:
    fw.sync_jail(WEB)
    sh("iptables-legacy", "-w", "-I", "OUTPUT", "1", "-d", "10.98.0.1", "-j", "ACCEPT")
    sh("ip6tables-legacy", "-w", "-I", "INPUT", "1", "-s", "fd00:98::1", "-j", "ACCEPT")
    assert first_rule("inet", "OUTPUT") == "-A OUTPUT -d 10.98.0.1/32 -j ACCEPT"
    fw.sync_jail(WEB)
    assert first_rule("inet", "OUTPUT") == "-A OUTPUT -m comment --comment netjail -j NETJAIL-OUT"
    assert first_rule("inet6", "INPUT") == "-A INPUT -m comment --comment netjail -j NETJAIL-IN"
    assert "-A OUTPUT -d 10.98.0.1/32 -j ACCEPT" in save("inet")
    assert "-A INPUT -s fd00:98::1/128 -j ACCEPT" in save("inet6")
    assert sum("-j NETJAIL-OUT" in line for line in save("inet")) == 1


@pytest.mark.parametrize("family", ["inet", "inet6"])
def test_counters_rise_with_dropped_and_allowed_traffic(fw: IptcFirewall, family: str) -> None:
    rx, tx, port = udp_pair(family)
    with rx, tx:
        fw.sync_jail(JailRules("cnt", out_selectors=(Match(family, "udp", dport=port),)))
        refused = send(tx, family, port, 20)
        assert refused == 20
        assert drain(rx) == 0
        c = fw.counters()["cnt"]
        part = c.inet if family == "inet" else c.inet6
        other = c.inet6 if family == "inet" else c.inet
        assert part.dropped_packets >= 20 and part.dropped_bytes >= 20 * 100
        assert (part.allowed_packets, other) == (0, Counters())
        assert c.total == part

        allow = Match(family, "udp", dst=LOOPBACK[family], dport=port)
        fw.sync_jail(JailRules("cnt", out_selectors=(Match(family, "udp", dport=port),), out_allow=(allow,)))
        assert send(tx, family, port, 15) == 0
        assert drain(rx) == 15
        after = fw.counters()["cnt"]
        part2 = after.inet if family == "inet" else after.inet6
        assert part2.allowed_packets >= 15
        assert part2.dropped_packets == part.dropped_packets  # the DROP rule kept its counters


def test_resync_is_idempotent_and_keeps_counters(fw: IptcFirewall) -> None:
    rx, tx, port = udp_pair("inet")
    with rx, tx:
        rules = JailRules("idem", out_selectors=(Match("inet", "udp", dport=port),))
        fw.sync_jail(rules)
        send(tx, "inet", port, 7)
        snapshot = {f: save(f, counters=True) for f in TOOL}
        fw.sync_jail(rules)
        assert {f: save(f, counters=True) for f in TOOL} == snapshot
        grown = JailRules(
            "idem",
            out_selectors=(Match("inet", "udp", dport=port), Match("inet", "tcp", dport=port)),
            out_allow=(Match("inet", dst="10.0.0.0/8"),),
        )
        fw.sync_jail(grown)
        lines = save("inet", counters=True)
        assert f"[7:896] -A NETJAIL-OUT -p udp -m udp --dport {port} -j NJ-O-idem" in lines
        assert "[7:896] -A NJ-O-idem -j DROP" in lines
        assert f"[0:0] -A NETJAIL-OUT -p tcp -m tcp --dport {port} -j NJ-O-idem" in lines
        assert lines.index("[0:0] -A NJ-O-idem -d 10.0.0.0/8 -j RETURN") < lines.index(
            "[7:896] -A NJ-O-idem -j DROP"
        )


def test_read_jail_round_trips_and_absent_jail_is_none(fw: IptcFirewall) -> None:
    rules = JailRules(
        "rt",
        out_selectors=(Match("inet", uid_owner=65534), Match("inet6", gid_owner=100, proto="udp", sport=5)),
        in_selectors=(Match("inet6", "tcp", src="fd00::/8", dport=22, in_iface="lo"),),
        out_allow=(Match("inet6", dst="::1"), Match("inet", "tcp", dst="10.0.0.0/8", dport=443)),
        in_allow=(
            Match("inet", src="10.1.0.0/16"),
            Match("inet6", "icmpv6", in_iface="lo", icmp6_type=135),
            Match("inet6", "icmpv6", icmp6_type=136),
        ),
    )
    fw.sync_jail(rules)
    assert canonical_rules(fw.read_jail("rt")) == canonical_rules(rules)  # type: ignore[arg-type]
    assert fw.read_jail("nope") is None
    fw.sync_jails([JailRules("a1"), JailRules("a2")])
    assert fw.jail_names() == {"rt", "a1", "a2"}
    assert fw.read_jail("a1") == JailRules("a1")
    fw.remove_jail("rt")
    fw.remove_jail("rt")  # absent: no error
    assert fw.jail_names() == {"a1", "a2"}


def test_drifted_chains_are_repaired(fw: IptcFirewall) -> None:
    fw.sync_jail(WEB)
    sh("iptables-legacy", "-w", "-D", "NJ-O-web", "-j", "DROP")  # the jail no longer drops
    sh("iptables-legacy", "-w", "-A", "NJ-O-web", "-j", "ACCEPT")  # and even lets all through
    sh("ip6tables-legacy", "-w", "-A", "NETJAIL-OUT", "-p", "udp", "--dport", "7", "-j", "NJ-O-web")
    sh("iptables-legacy", "-w", "-D", "OUTPUT", "-m", "comment", "--comment", "netjail", "-j", "NETJAIL-OUT")
    assert canonical_rules(fw.read_jail("web")) != canonical_rules(WEB)  # type: ignore[arg-type]
    fw.sync_jail(WEB)
    assert canonical_rules(fw.read_jail("web")) == canonical_rules(WEB)  # type: ignore[arg-type]
    assert "-A NJ-O-web -j ACCEPT" not in ours("inet")
    assert ours("inet")[-1] == "-A NJ-O-web -j DROP"
    assert first_rule("inet", "OUTPUT") == "-A OUTPUT -m comment --comment netjail -j NETJAIL-OUT"


def test_reset_removes_leftovers_without_jails(fw: IptcFirewall) -> None:
    add_foreign_rules(3)
    before = {f: save(f) for f in TOOL}
    for tool in TOOL.values():  # what a crash between two commits could leave
        sh(tool, "-w", "-N", "NETJAIL-OUT")
        sh(tool, "-w", "-I", "OUTPUT", "1", "-m", "comment", "--comment", "netjail", "-j", "NETJAIL-OUT")
    assert fw.jail_names() == set()
    fw.reset()
    assert {f: save(f) for f in TOOL} == before


def test_missing_iptables_extension_is_unsupported(tmp_path: Path) -> None:
    libdir = tmp_path / "xtables"
    libdir.mkdir()
    from iptc import xtables

    system = Path(xtables._xtables_libdir)
    for ext in ("libxt_standard.so", "libxt_udp.so", "libxt_tcp.so", "libxt_comment.so"):
        (libdir / ext).symlink_to(system / ext)
    code = (
        "from netjail.backends.firewall import default_firewall, JailRules, Match\n"
        "from netjail.backends.errors import NetjailError\n"
        "try:\n"
        "    default_firewall().sync_jail(JailRules('nocg', out_selectors=(Match('inet', cgroup='/'),)))\n"
        "except NetjailError as e:\n"
        "    print(type(e).__name__, e.exit_code, e)\n"
    )
    env = {**os.environ, "XTABLES_LIBDIR": str(libdir)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("UnsupportedEnvironment 4 iptables extension 'cgroup' unavailable")
    assert "\n" not in out.stdout.strip()
    assert not [line for f in TOOL for line in ours(f)]


def test_bad_input_changes_nothing(fw: IptcFirewall, cgroup: tuple[Path, str]) -> None:
    fw.sync_jail(WEB)
    before = {f: save(f, counters=True) for f in TOOL}
    with pytest.raises(BadInput):
        fw.sync_jail(JailRules("x" * 24))
    with pytest.raises(BadInput):
        fw.sync_jails([JailRules("ok"), JailRules("bad", in_selectors=(Match("inet", uid_owner=0),))])
    with pytest.raises(OperationFailed, match="does not exist"):
        missing = cgroup[1] + "/missing"
        fw.sync_jails([JailRules("ok"), JailRules("bad", out_selectors=(Match("inet", cgroup=missing),))])
    assert {f: save(f, counters=True) for f in TOOL} == before


def test_concurrent_iptables_writer_loses_nothing(fw: IptcFirewall) -> None:
    total = 120
    sh("iptables-legacy", "-w", "-N", "WRITER")
    script = (
        f"i=0; while [ $i -lt {total} ]; do "
        "iptables-legacy -w -A WRITER -s 10.88.$((i / 200)).$((i % 200 + 1)) -j RETURN || exit 1; "
        "i=$((i + 1)); done"
    )
    writer = subprocess.Popen(["sh", "-c", script], stderr=subprocess.PIPE, text=True)
    syncs = 0
    while writer.poll() is None or syncs < 30:
        jail = f"c{syncs % 4}"
        fw.sync_jail(JailRules(jail, out_selectors=(Match("inet", "udp", dport=1000 + syncs),)))
        syncs += 1
    assert writer.wait(30) == 0, writer.stderr.read() if writer.stderr else ""
    lines = save("inet")
    assert sum(line.startswith("-A WRITER ") for line in lines) == total
    for k in range(4):
        last = max(n for n in range(syncs) if n % 4 == k)
        held = fw.read_jail(f"c{k}")
        assert held is not None and held.out_selectors == (Match("inet", "udp", dport=1000 + last),)
    assert sum("-j NETJAIL-OUT" in line for line in lines) == 1


class _Interrupted(IptcFirewall):
    """Lets another writer (one that ignores the xtables lock) commit between plan and commit."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = 0

    def _stage(self, table, changes):  # type: ignore[no-untyped-def]
        super()._stage(table, changes)
        self.stages += 1
        if self.stages == 1:
            env = {**os.environ, "XTABLES_LOCKFILE": "/tmp/netjail-test-other.lock"}
            subprocess.run(
                ["iptables-legacy", "-w", "-A", "OUTPUT", "-d", "10.97.0.1", "-j", "ACCEPT"],
                env=env,
                check=True,
                capture_output=True,
            )


def test_commit_conflict_is_replanned(fw: IptcFirewall) -> None:
    racy = _Interrupted()
    racy.sync_jail(WEB)
    assert racy.stages >= 3  # inet planned twice (EAGAIN on the first commit), then inet6
    assert "-A OUTPUT -d 10.97.0.1/32 -j ACCEPT" in save("inet")
    assert canonical_rules(racy.read_jail("web")) == canonical_rules(WEB)  # type: ignore[arg-type]


def test_privileges_are_reported(tmp_path: Path) -> None:
    code = (
        "from netjail.backends.firewall import default_firewall, JailRules\n"
        "from netjail.backends.errors import NetjailError\n"
        "fw = default_firewall()\n"
        "for call in (fw.counters, fw.jail_names, lambda: fw.sync_jail(JailRules('x'))):\n"
        "    try:\n"
        "        call(); print('ok')\n"
        "    except NetjailError as e:\n"
        "        print(type(e).__name__, e.exit_code)\n"
    )
    out = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["InsufficientPrivilege 3"] * 3


# ---- cgroups ---------------------------------------------------------------------------------


def spawn_in_cgroup(cgroup_dir: Path, *args: str) -> Peer:
    """A tests/peers.py process that joins `cgroup_dir` before it creates any socket."""
    cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup_dir)]
    cmd += [sys.executable, str(PEERS), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peer = Peer(proc)
    threading.Thread(target=peer._read, daemon=True).start()
    peer.wait_ready()
    return peer


def test_cgroup_selector_drops_and_counts_a_real_process(fw: IptcFirewall, cgroup: tuple[Path, str]) -> None:
    path, rel = cgroup
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    peer = spawn_in_cgroup(path, "udp-send", "127.0.0.1", str(rx.getsockname()[1]), "--interval", "0.01")
    try:
        assert (path / "cgroup.procs").read_text().split() == [str(peer.pid)]
        assert drain(rx, settle=0.2) > 0  # it gets through before the jail
        fw.sync_jail(JailRules("cg", out_selectors=(Match("inet", cgroup=rel),)))
        drain(rx, settle=0.05)  # whatever was in flight
        time.sleep(0.4)
        assert drain(rx, settle=0) == 0
        assert peer.wait_for(lambda c: int(c.get("errors", 0)) >= 10)  # type: ignore[call-overload]
        assert fw.counters()["cg"].inet.dropped_packets >= 10
        # a gate in the chain every packet walks, the member's selector in the cgroup lane
        assert f'-A NETJAIL-OUT -m cgroup --path "{rel}" -j NETJAIL-OUT-CG' in ours("inet")
        assert f'-A NETJAIL-OUT-CG -m cgroup --path "{rel}" -j NJ-O-cg' in ours("inet")
    finally:
        peer.kill()
        rx.close()


def test_selectors_of_deleted_cgroups_are_pruned(fw: IptcFirewall, cgroup: tuple[Path, str]) -> None:
    path, rel = cgroup
    fw.sync_jail(JailRules("dead", out_selectors=(Match("inet", cgroup=rel), Match("inet", "udp", dport=9))))
    path.rmdir()
    # The hazard: the kernel now refuses every table replace, whoever makes it.
    refused = sh("iptables-legacy", "-w", "-A", "OUTPUT", "-d", "10.96.0.1", "-j", "ACCEPT", check=False)
    assert refused.returncode != 0 and "Invalid argument" in refused.stderr
    fw.sync_jail(JailRules("other"))
    assert fw.read_jail("dead") == JailRules("dead", out_selectors=(Match("inet", "udp", dport=9),))
    sh("iptables-legacy", "-w", "-A", "OUTPUT", "-d", "10.96.0.1", "-j", "ACCEPT")


def test_failed_second_family_rolls_back_the_first(fw: IptcFirewall, cgroup: tuple[Path, str]) -> None:
    path, rel = cgroup
    fw.sync_jail(JailRules("keep", out_selectors=(Match("inet", "udp", dport=11),)))
    # someone else's IPv6 rule on a cgroup that then disappears: every ip6tables commit fails
    sh("ip6tables-legacy", "-w", "-A", "OUTPUT", "-m", "cgroup", "--path", rel, "-j", "ACCEPT")
    path.rmdir()
    before = save("inet", counters=True)
    undone: list[str] = []
    real_undo = fw._undo

    def undo(committed: dict[str, object], cause: Exception) -> None:
        undone.extend(committed)
        real_undo(committed, cause)  # type: ignore[arg-type]

    fw._undo = undo  # type: ignore[method-assign]
    with pytest.raises(OperationFailed, match=f"no longer exist: {rel}"):
        fw.sync_jails(
            [
                JailRules("new", out_selectors=(Match("inet", "tcp", dport=12),)),
                JailRules("keep", out_selectors=(Match("inet", "udp", dport=13),)),
            ]
        )
    assert undone == ["inet"]  # IPv4 had been committed, and was put back
    assert save("inet", counters=True) == before
    sh("ip6tables-legacy", "-w", "-D", "OUTPUT", "-m", "cgroup", "--path", rel, "-j", "ACCEPT")


# ---- the xtables lock --------------------------------------------------------------------------


def test_xtables_lock_is_the_one_iptables_legacy_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netjail.backends.firewall.xtables_lock import xtables_lock

    lock = tmp_path / "xtables.lock"
    monkeypatch.setenv("XTABLES_LOCKFILE", str(lock))  # iptables honours it too
    with xtables_lock():
        lister = subprocess.Popen(["iptables-legacy", "-w", "-L", "-n"], stdout=subprocess.DEVNULL)
        wait_in_proc_locks(lister.pid, waiting=True)  # blocked in flock() on our lock
        assert lister.poll() is None
    assert lister.wait(30) == 0

    # Someone else holds it until told to let go (stdin closed), not for a while.
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", "read _ || :"], stdin=subprocess.PIPE)
    assert holder.stdin is not None
    wait_in_proc_locks(holder.pid, waiting=False)
    with pytest.raises(OperationFailed, match="held"), xtables_lock(timeout=0.1):
        pass
    released = threading.Event()

    def let_go() -> None:
        released.set()
        holder.stdin.close()  # type: ignore[union-attr]

    threading.Timer(0.3, let_go).start()
    with xtables_lock(timeout=60):
        assert released.is_set()  # we got it only once the other holder let go
    assert holder.wait(30) == 0


def wait_in_proc_locks(pid: int, waiting: bool, timeout: float = 30) -> None:
    """Until /proc/locks shows `pid` holding a flock (waiting=False) or blocked on one ("->")."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            is_waiter = fields[1] == "->"
            rest = fields[2:] if is_waiter else fields[1:]
            if rest[0] == "FLOCK" and int(rest[3]) == pid and is_waiter == waiting:
                return
        time.sleep(0.01)
    raise AssertionError(f"PID {pid} never {'waited for' if waiting else 'held'} a flock")


def test_incoming_mark_lane_matches_the_sockets_mark_and_survives_a_resync(fw: IptcFirewall) -> None:
    """A packet for a socket carrying the jail's mark is dropped and counted coming in; one for
    an unmarked socket on the next port passes, and leaves with mark 0 (the lane's tail). The
    gate rule decodes back as written: a second sync replaces nothing (its counter stays)."""
    mark = Match("inet", mark=0x5000000, mark_mask=0xFF000000)
    marked, plain = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for s in (marked, plain):
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
    marked.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x5000000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, marked, plain:
        fw.sync_jail(JailRules("inmark", in_selectors=(mark,)))
        tx.sendto(b"x", marked.getsockname())
        tx.sendto(b"y", plain.getsockname())
        assert plain.recv(10) == b"y"
        with pytest.raises(TimeoutError):
            marked.recv(10)
        assert fw.counters()["inmark"].inet.dropped_packets == 1
        gate = [ln for ln in save("inet", counters=True) if "-j NETJAIL-IN-MK" in ln]
        assert len(gate) == 1 and "--mark 0x0/0xffffff " in gate[0], gate  # no bits but netjail's
        lane = [ln for ln in ours("inet") if ln.startswith("-A NETJAIL-IN-MK")]
        # the lookup first: an unjailed socket's packet leaves after one rule
        assert "--nowildcard --restore-skmark -m mark --mark 0x0 -j RETURN" in lane[0], lane
        assert lane[1] == "-A NETJAIL-IN-MK -m mark --mark 0x0/0xffffff -j MARK --set-xmark 0x0/0xff000000"
        assert "--nowildcard --restore-skmark -m mark --mark 0x0 -j RETURN" in lane[2], lane
        assert lane[-1] == "-A NETJAIL-IN-MK -j MARK --set-xmark 0x0/0xffffffff"
        fw.sync_jail(JailRules("inmark", in_selectors=(mark,)))
        assert [ln for ln in save("inet", counters=True) if "-j NETJAIL-IN-MK" in ln] == gate
        assert fw.read_jail("inmark") == canonical_rules(JailRules("inmark", in_selectors=(mark,)))
    fw.remove_jail("inmark")
    assert ours("inet") == []
