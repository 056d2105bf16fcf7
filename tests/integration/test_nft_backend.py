"""The nftables backend on the real kernel (the contract suite runs it too): what is particular to
netjail's own `table inet netjail` — read-back, idle syncs that commit nothing, a user's rules
inside or beside the table, other writers, deleted cgroups — with real packets where it matters.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netjail.backends.errors import OperationFailed
from netjail.backends.firewall.base import JailRules, Match, SetEntry
from netjail.backends.firewall.matches import canonical_rules
from netjail.backends.firewall.nft_backend import NftFirewall, cgroup_prefix
from netjail.backends.firewall.nft_binding import Nft, NftError
from netjail.backends.firewall.nft_genid import read_genid
from netjail.backends.system.cgroupfs import find_cgroup2

# NftFirewall itself, whatever the pass's backend: it runs in the nftables pass only
pytestmark = [pytest.mark.root, pytest.mark.backend("nftables")]

NOBODY = 65534
SENDER = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "ok = 0\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    try:\n"
    "        s.sendto(b'x', ('127.0.0.1', int(sys.argv[1]))); ok += 1\n"
    "    except OSError:\n"
    "        pass\n"
    "print(ok)\n"
)


def nft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=False)


def listing(table: str = "inet netjail") -> list[dict[str, object]]:
    """The table as `nft -j` prints it, without handles (they say nothing about content)."""
    out = nft("-j", "list", "table", *table.split())
    if out.returncode != 0:
        return []
    items = json.loads(out.stdout)["nftables"]
    for item in items:
        for body in item.values():
            if isinstance(body, dict):
                body.pop("handle", None)
    return [i for i in items if "metainfo" not in i]


@pytest.fixture
def fw() -> Iterator[NftFirewall]:
    firewall = NftFirewall()
    firewall.reset()
    yield firewall
    firewall.reset()
    nft("delete", "table", "inet", "foreign")


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.3)
    yield rx
    rx.close()


def send_as_nobody(rx: socket.socket, count: int = 50) -> tuple[int, int]:
    """(sends the kernel let out, datagrams the receiver got) for `count` sends by uid nobody."""
    port = str(rx.getsockname()[1])
    who = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    out = subprocess.run(
        [*who, "/usr/bin/python3", "-c", SENDER, port, str(count)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    got = 0
    try:
        while True:
            rx.recv(16)
            got += 1
    except TimeoutError:
        pass
    return int(out.stdout), got


def owner_jail(name: str = "nob") -> JailRules:
    return JailRules(name, out_selectors=(Match("inet", uid_owner=NOBODY), Match("inet6", uid_owner=NOBODY)))


@pytest.fixture
def cgroups() -> Iterator[Path]:
    found = find_cgroup2()
    assert found is not None and cgroup_prefix() is not None
    base = Path(found.path) / f"nj-nft-test-{os.getpid()}"
    (base / "web" / "1").mkdir(parents=True)
    (base / "web" / "2").mkdir()
    yield base
    for p in sorted(base.rglob("*"), key=lambda p: -len(p.parts)):
        if p.is_dir():
            p.rmdir()
    base.rmdir()


def test_a_foreign_accept_before_and_after_netjail_does_not_reopen_a_jail(
    fw: NftFirewall, receiver: socket.socket
) -> None:
    assert send_as_nobody(receiver) == (50, 50)
    fw.sync_jail(owner_jail())
    assert send_as_nobody(receiver) == (0, 0)
    for priority in (-100, 100):
        nft(
            "add table inet foreign; "
            f"add chain inet foreign out {{ type filter hook output priority {priority}; policy accept; }}; "
            "add rule inet foreign out accept"
        )
        assert send_as_nobody(receiver) == (0, 0), f"accept at priority {priority}"
        assert nft("delete", "table", "inet", "foreign").returncode == 0
    subprocess.run(["iptables-legacy", "-w", "-I", "OUTPUT", "-j", "ACCEPT"], check=True)
    try:
        assert send_as_nobody(receiver) == (0, 0)
    finally:
        subprocess.run(["iptables-legacy", "-w", "-D", "OUTPUT", "-j", "ACCEPT"], check=True)
    assert fw.counters()["nob"].inet.dropped_packets == 200  # 4 x 50 sends, each dropped


def test_a_refused_change_leaves_nothing_half_applied(fw: NftFirewall, cgroups: Path) -> None:
    fw.sync_jail(owner_jail())
    before = listing()
    gone = "/" + str((cgroups / "web" / "missing").relative_to(find_cgroup2().path))  # type: ignore[union-attr]
    with pytest.raises(OperationFailed, match="does not exist"):
        fw.sync_jails([owner_jail("other"), JailRules("bad", out_selectors=(Match("inet", cgroup=gone),))])
    assert listing() == before
    # the kernel side of it: one buffer is one transaction, its failing last command undoes the rest
    prefix = cgroup_prefix()
    with pytest.raises(NftError, match="cgroupv2 path fails"):
        Nft().run(
            "add table inet foreign\n"
            "add chain inet foreign c\n"
            "add map inet foreign m { type cgroupsv2 : verdict; }\n"
            f'add element inet foreign m {{ "{prefix}/nj-no-such-cgroup" : jump c }}'
        )
    assert nft("list", "table", "inet", "foreign").returncode != 0


def test_every_selector_reads_back_and_an_unchanged_sync_commits_nothing(
    fw: NftFirewall, cgroups: Path
) -> None:
    root = find_cgroup2()
    assert root is not None
    member = "/" + str((cgroups / "web" / "1").relative_to(root.path))
    wanted = JailRules(
        "web",
        out_selectors=(
            Match("inet", cgroup=member),
            Match("inet6", cgroup=member),
            Match("inet", mark=0x3000000, mark_mask=0xFF000000),
            Match("inet6", mark=0x3000000, mark_mask=0xFF000000),
            Match("inet", gid_owner=4242),
            Match("inet", match_set="nj4-web-f", set_flags="src,src,dst"),
            Match("inet6", match_set="nj6-web-p", set_flags="src,src"),
        ),
        in_selectors=(
            Match("inet", mark=0x3000000, mark_mask=0xFF000000),
            Match("inet", match_set="nj4-web-f", set_flags="dst,dst,src"),
        ),
        fwd_selectors=(Match("inet", in_iface="njv-test"),),
        out_allow=(
            Match("inet", dst="10.0.0.0/8"),
            Match("inet", dst="10.1.0.0/16"),  # inside the one above: a rule of its own
            Match("inet", "tcp", dst="192.0.2.0/24", dport=443),
            Match("inet6", "udp", dst="fd00::/64", dport=53),
            Match("inet", dst="127.0.0.0/8", out_iface="lo"),
        ),
        in_allow=(Match("inet6", "icmpv6", in_iface="lo", icmp6_type=135), Match("inet", src="10.9.0.0/16")),
        fwd_allow=(Match("inet", "tcp", dst="198.51.100.0/24", dport=80, in_iface="njv-test"),),
        set_entries=(
            SetEntry("inet", "flow", "tcp", 5555, "127.0.0.1", "127.0.0.2"),
            SetEntry("inet6", "port", "udp", 5353),
        ),
    )
    fw.sync_jail(wanted)
    assert canonical_rules(fw.read_jail("web")) == canonical_rules(wanted)  # type: ignore[arg-type]
    gen = read_genid()
    fw.sync_jail(wanted)
    assert read_genid() == gen  # verified at this generation: not even listed
    fw._verified_gen = None  # forget it: planned from a listing, still nothing to commit
    fw.sync_jail(wanted)
    assert read_genid() == gen
    assert fw.jail_names() == {"web"}
    fw.remove_jail("web")
    assert nft("list", "table", "inet", "netjail").returncode != 0  # the last jail takes the table


def test_flush_ruleset_and_a_deleted_table_are_rebuilt_by_the_next_sync(
    fw: NftFirewall, receiver: socket.socket
) -> None:
    fw.sync_jail(owner_jail())
    assert send_as_nobody(receiver) == (0, 0)
    for wreck in (["flush", "ruleset"], ["delete", "table", "inet", "netjail"]):
        assert nft(*wreck).returncode == 0
        assert send_as_nobody(receiver) == (50, 50)  # open: what the watcher's next pass closes
        fw.sync_jail(owner_jail())
        assert send_as_nobody(receiver) == (0, 0)


def test_a_users_rule_inside_netjails_table_is_removed_by_the_next_sync(
    fw: NftFirewall, receiver: socket.socket
) -> None:
    fw.sync_jail(owner_jail())
    # an accept in netjail's own base chain ends that chain before any jail is looked up
    assert nft("insert", "rule", "inet", "netjail", "output", "accept").returncode == 0
    assert nft("add", "rule", "inet", "netjail", "nj-o-nob", "accept").returncode == 0
    assert send_as_nobody(receiver) == (50, 50)
    fw.sync_jail(owner_jail())
    assert send_as_nobody(receiver) == (0, 0)
    rules = [
        i["rule"]
        for i in json.loads(nft("-j", "list", "table", "inet", "netjail").stdout)["nftables"]
        if "rule" in i
    ]
    assert not [r for r in rules if {"accept": None} in r["expr"]]


def test_another_writer_committing_all_the_time_does_not_fail_a_sync_or_lose_a_jail(fw: NftFirewall) -> None:
    stop = threading.Event()
    commits = 0

    def churn() -> None:
        nonlocal commits
        ctx = Nft()
        while not stop.is_set():
            ctx.run("add table inet foreign\ndelete table inet foreign")
            commits += 1

    writer = threading.Thread(target=churn, daemon=True)
    writer.start()
    try:
        wanted = {}
        for i in range(40):
            name = f"j{i % 8}"
            wanted[name] = JailRules(
                name,
                out_selectors=(Match("inet", uid_owner=1000 + i % 8),),
                out_allow=tuple(
                    Match("inet", "tcp", dst=f"10.{i}.0.0/16", dport=p) for p in range(1, 2 + i % 3)
                ),
            )
            fw.sync_jail(wanted[name])
    finally:
        stop.set()
        writer.join(5)
    assert commits > 40  # it really committed in between
    for name, rules in wanted.items():
        assert canonical_rules(fw.read_jail(name)) == canonical_rules(rules)  # type: ignore[arg-type]


def test_a_deleted_member_cgroup_leaves_the_map_on_the_next_change(fw: NftFirewall, cgroups: Path) -> None:
    root = find_cgroup2()
    assert root is not None
    one, two = ("/" + str((cgroups / "web" / n).relative_to(root.path)) for n in ("1", "2"))
    both = ("inet", "inet6")
    fw.sync_jail(JailRules("web", out_selectors=tuple(Match(f, cgroup=c) for c in (one, two) for f in both)))
    (cgroups / "web" / "1").rmdir()
    listed = nft("-j", "list", "table", "inet", "netjail").stdout
    assert any(
        str(k).isdigit()  # a deleted cgroup lists as its bare id
        for m in json.loads(listed)["nftables"]
        if "map" in m
        for k, _ in m["map"].get("elem", [])
    )
    fw.sync_jail(JailRules("web", out_selectors=tuple(Match(f, cgroup=two) for f in both)))
    got = fw.read_jail("web")
    assert got is not None and {m.cgroup for m in got.out_selectors} == {two}
    listed = nft("-j", "list", "table", "inet", "netjail").stdout
    assert not any(
        str(k).isdigit()  # a deleted cgroup lists as its bare id
        for m in json.loads(listed)["nftables"]
        if "map" in m
        for k, _ in m["map"].get("elem", [])
    )


def test_nothing_outside_netjails_table_is_touched(fw: NftFirewall) -> None:
    assert (
        nft(
            "add table inet foreign; add set inet foreign s { type ipv4_addr; elements = { 10.0.0.1 } }; "
            "add chain inet foreign out { type filter hook output priority 0; policy accept; }; "
            "add rule inet foreign out ip daddr @s counter accept; add table ip nat2"
        ).returncode
        == 0
    )
    before = (listing("inet foreign"), listing("ip nat2"))
    fw.sync_jail(owner_jail())
    fw.sync_masquerade("nob", ["10.231.4.0/30"], "lo")
    assert fw.jail_names() == {"nob"}
    fw.remove_jail("nob")
    fw.reset()
    assert (listing("inet foreign"), listing("ip nat2")) == before
    assert nft("delete", "table", "ip", "nat2").returncode == 0


def test_masquerade_reads_back_and_goes_with_its_last_rule(fw: NftFirewall) -> None:
    fw.sync_masquerade("veth1", ["10.231.4.0/30", "fd00:231::/64"], "lo")
    assert fw.masquerades() == {"veth1": ("10.231.4.0/30", "fd00:231::/64")}
    gen = read_genid()
    fw.sync_masquerade("veth1", ["fd00:231::/64", "10.231.4.0/30"], "lo")
    assert read_genid() == gen
    fw.sync_jail(owner_jail())
    fw.remove_masquerade("veth1")
    assert fw.masquerades() == {} and fw.jail_names() == {"nob"}
    fw.remove_jail("nob")
    assert nft("list", "table", "inet", "netjail").returncode != 0
    time.sleep(0)


def test_two_hundred_member_cgroups_read_back_by_id(fw: NftFirewall, cgroups: Path) -> None:
    """The cgroup maps are read as ids and named by one walk of the tree (nft_elements.py):
    libnftables would walk the tree once per element (24 s for 500 here)."""
    root = find_cgroup2()
    assert root is not None
    paths = []
    for i in range(200):
        (cgroups / "web" / "many" / str(i)).mkdir(parents=True)
        paths.append("/" + str((cgroups / "web" / "many" / str(i)).relative_to(root.path)))
    wanted = JailRules(
        "web", out_selectors=tuple(Match(f, cgroup=p) for p in paths for f in ("inet", "inet6"))
    )
    fw.sync_jail(wanted)
    assert canonical_rules(fw.read_jail("web")) == canonical_rules(wanted)  # type: ignore[arg-type]
    fw._verified_gen = None
    gen = read_genid()
    fw.sync_jail(wanted)
    assert read_genid() == gen


def test_an_allowed_dns_answer_is_copied_to_the_attempts_log_on_lane_a(
    fw: NftFirewall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver on the allow-list answers a jailed socket: the answer passes, and a copy goes
    to the attempts group with prefix netjail:a:<jail> (what names the jail's later attempts)."""
    from netjail.backends.attempts import prefix
    from netjail.backends.attempts.nflog import NflogGroup, parse_batch

    monkeypatch.setenv(prefix.GROUP_ENV, "5791")  # a group of this test's own
    mark = 0x6000000
    jail = JailRules(
        "dns",
        in_selectors=tuple(Match(f, mark=mark, mark_mask=0xFF000000) for f in ("inet", "inet6")),
        in_allow=(Match("inet", "udp", src="127.0.0.1/32", sport=53),),
    )
    fw.sync_jail(jail)
    group = NflogGroup(5791, snaplen=prefix.SNAPLEN, qthresh=1, timeout_cs=1)
    resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        resolver.bind(("127.0.0.1", 53))
        client.bind(("127.0.0.1", 0))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        client.settimeout(2)
        resolver.sendto(b"\x12\x34\x81\x80" + bytes(8), client.getsockname())  # a bare DNS answer
        assert client.recv(64)[:2] == b"\x12\x34"  # allowed through
        deadline = time.monotonic() + 3
        copies: list[str] = []
        while time.monotonic() < deadline and not copies:
            import select

            if select.select([group.fileno()], [], [], 0.2)[0]:
                copies = [p.prefix for data in group.reads() for p in parse_batch(data)]
        assert copies == ["netjail:a:dns"]
    finally:
        group.close()
        resolver.close()
        client.close()
