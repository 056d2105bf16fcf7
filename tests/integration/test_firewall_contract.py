"""The contract every firewall backend passes (firewall/base.py), run against each registered
backend (firewall/registry.py) on the real kernel, in the test's private netns.

Everything is checked through the Firewall interface (rules read back with read_jail and
jail_names, counters with counters(), NAT with masquerades()) and with real packets counted at
the receiver. What only the kernel's own tools can show (rules that are not netjail's, whether
anything of netjail's is left) comes from a small per-backend harness below: a new backend adds
its registry entry, its module and one Harness here.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.firewall import registry
from netjail.backends.firewall.base import Firewall, JailRules, Match
from netjail.backends.firewall.matches import canonical_rules
from netjail.backends.jails import names
from netjail.backends.launch.netns import create_netns, remove_netns
from netjail.backends.model import Counters

from tests import firewall_probe
from tests.conftest import Host, Peer
from tests.integration import test_firewall as xt
from tests.integration.launch_support import Listener, probe, start_listener
from tests.integration.test_firewall import cgroup  # noqa: F401 - the fixture, shared

# parametrized over every registered backend here: tests/run_parallel.py runs this file once
pytestmark = pytest.mark.every_backend

NAT_SAVE = ("iptables-legacy-save", "ip6tables-legacy-save")
LOOPBACK = {"inet": "127.0.0.1", "inet6": "::1"}
# a second local address per family, for an allow entry that is a bare CIDR (no port)
OTHER = {"inet": "127.0.0.2", "inet6": "fd00:98::1"}
PREFIX = {"inet": 32, "inet6": 128}
AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}


def _iptables_netjail_left() -> list[str]:
    nat = "".join(subprocess.run([t, "-t", "nat"], capture_output=True, text=True).stdout for t in NAT_SAVE)
    return xt.ours("inet") + xt.ours("inet6") + [ln for ln in nat.splitlines() if "NETJAIL" in ln]


def _iptables_ours_with_counters() -> list[str]:
    return [ln for f in ("inet", "inet6") for ln in xt.save(f, counters=True) if xt.is_ours(ln)]


def _nft(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True)
    assert out.returncode == 0, f"nft {' '.join(args)}: {out.stderr}"
    return out.stdout


def _nft_clean() -> None:
    """Every nf_tables table of the private netns (iptables-nft's included): none of them is the
    machine's, and the legacy tables are iptables' harness's to empty."""
    _nft("flush", "ruleset")


def _nft_add_foreign(tag: int) -> None:
    """Another tool's table with base chains on netjail's hooks, a user chain, a set and a rule
    per family, like firewalld's or Docker's nftables rules."""
    _nft(
        "-f",
        "-",
        stdin=f"""
table inet foreign{tag} {{
    set peers {{ type ipv4_addr; elements = {{ 10.99.{tag}.5 }} }}
    chain userchain {{ ip saddr 10.99.{tag}.3 tcp dport 22 return; }}
    chain f_out {{ type filter hook output priority 0; ip daddr 10.99.{tag}.1 accept; jump userchain; }}
    chain f_in {{
        type filter hook input priority 0; ip6 saddr fd00:99:{tag}::2 accept; ip saddr @peers accept;
    }}
    chain f_fwd {{ type filter hook forward priority 0; ip6 daddr fd00:99:{tag}::4 drop; }}
}}
table ip foreignnat{tag} {{
    chain f_post {{ type nat hook postrouting priority srcnat; ip saddr 10.99.{tag}.0/24 masquerade; }}
}}
""",
    )


def _nft_ruleset() -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(_nft("-j", "list", "ruleset"))["nftables"]
    return [o for o in listed if "metainfo" not in o]


def _nft_foreign() -> list[dict[str, Any]]:
    """Every object of a table that is not `inet netjail`, as nft lists it (handles included: a
    rule deleted and re-added would differ)."""
    mine = ("inet", "netjail")

    def where(obj: dict[str, Any]) -> tuple[str, str]:
        body = next(iter(obj.values()))
        return (body.get("family"), body.get("table", body.get("name")))

    return [o for o in _nft_ruleset() if where(o) != mine]


def _nft_ours() -> list[str]:
    """netjail's table as nft lists it, counters and handles included."""
    return [json.dumps(o, sort_keys=True) for o in firewall_probe.nft_objects() or ()]


@dataclass(frozen=True)
class Harness:
    """What the contract needs to see beside the interface, per backend."""

    clean: Callable[[], None]  # the private netns's tables as they start: empty
    add_foreign: Callable[[int], None]  # rules of another tool (Docker, ufw ...) in both families
    foreign: Callable[[], object]  # a snapshot of everything that is not netjail's
    netjail_left: Callable[[], list[str]]  # anything of netjail's still in the kernel (filter, nat)
    ours: Callable[[], list[str]]  # netjail's rules with their counters, as the kernel shows them


HARNESSES: dict[str, Harness] = {
    "iptables": Harness(
        clean=xt.flush_all,
        add_foreign=xt.add_foreign_rules,
        foreign=lambda: (xt.foreign("inet"), xt.foreign("inet6")),
        netjail_left=_iptables_netjail_left,
        ours=_iptables_ours_with_counters,
    ),
    "nftables": Harness(
        clean=_nft_clean,
        add_foreign=_nft_add_foreign,
        foreign=_nft_foreign,
        netjail_left=firewall_probe.netjail_left,
        ours=_nft_ours,
    ),
}
HARNESSES = {name: h for name, h in HARNESSES.items() if name in registry.BACKENDS}  # until merged


@pytest.fixture(params=sorted(registry.BACKENDS))
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Firewall, Harness]]:
    name: str = request.param
    monkeypatch.setenv(registry.ENV, name)  # the backend in use: names, netns and the engine ask it
    harness = HARNESSES[name]
    harness.clean()
    fw = registry.create(registry.BACKENDS[name])
    yield fw, harness
    fw.reset()
    fw.reset_masquerade()
    harness.clean()


def test_every_registered_backend_has_a_harness() -> None:
    assert set(HARNESSES) == set(registry.BACKENDS)


def test_backend_describes_itself(backend: tuple[Firewall, Harness]) -> None:
    fw, _ = backend
    info = fw.describe()
    assert registry.BACKENDS[info.name] is info and registry.selected() is info
    assert isinstance(registry.select_backend(), type(fw))
    assert fw.limits() == info.limits and info.limits.max_jail_name > 0


def spawn_senders(cgroup_dir: Path, *targets: str) -> Peer:
    """A real process in the jail's cgroup sending a datagram to each target, every 10 ms."""
    return xt.spawn_in_cgroup(cgroup_dir, "udp-send-multi", *targets, "--interval", "0.01")


def receiver(addr: str) -> tuple[socket.socket, str]:
    rx = socket.socket(AF["inet6" if ":" in addr else "inet"], socket.SOCK_DGRAM)
    rx.bind((addr, 0))
    rx.setblocking(False)
    return rx, f"[{addr}]:{rx.getsockname()[1]}"


@pytest.fixture
def other_addresses() -> Iterator[None]:
    """fd00:98::1 on loopback (127.0.0.2 is there already), in the private netns."""
    subprocess.run(["ip", "-6", "addr", "add", f"{OTHER['inet6']}/128", "dev", "lo", "nodad"], check=True)
    yield
    subprocess.run(["ip", "-6", "addr", "del", f"{OTHER['inet6']}/128", "dev", "lo"], check=False)


@pytest.mark.parametrize("family", ["inet", "inet6"])
def test_cgroup_jail_with_allow_list_drops_allows_and_counts_real_packets(
    backend: tuple[Firewall, Harness],
    cgroup: tuple[Path, str],  # noqa: F811 - the shared fixture
    other_addresses: None,
    family: str,
) -> None:
    """A process in the jail's cgroup sends to three receivers: the CIDR:PORT entry's, the bare
    CIDR entry's and one no entry allows. The first two receive, the third gets nothing; the
    jail's counters (this family's part) grow on both sides, the other family's stay zero."""
    fw, _ = backend
    path, rel = cgroup
    (ok, ok_t), (bad, bad_t), (wide, wide_t) = (
        receiver(LOOPBACK[family]),
        receiver(LOOPBACK[family]),
        receiver(OTHER[family]),
    )
    ok_port = ok.getsockname()[1]
    rules = JailRules(
        "ct",
        out_selectors=(Match(family, cgroup=rel),),
        out_allow=(
            Match(family, "udp", dst=f"{LOOPBACK[family]}/{PREFIX[family]}", dport=ok_port),
            Match(family, dst=f"{OTHER[family]}/{PREFIX[family]}"),
        ),
    )
    fw.sync_jail(rules)
    peer = spawn_senders(path, ok_t, bad_t, wide_t)
    try:
        assert peer.wait_for(lambda c: int(c.get("errors", 0)) >= 10)  # type: ignore[call-overload]
        time.sleep(0.2)
        got = {t: xt.drain(s, settle=0) for t, s in ((ok_t, ok), (bad_t, bad), (wide_t, wide))}
        assert got[bad_t] == 0 and got[ok_t] >= 10 and got[wide_t] >= 10, got
        c = fw.counters()["ct"]
        part, other = (c.inet, c.inet6) if family == "inet" else (c.inet6, c.inet)
        assert part.dropped_packets >= 10 and part.allowed_packets >= got[ok_t] + got[wide_t]
        assert part.dropped_bytes >= 64 * part.dropped_packets
        assert other == Counters() and c.total == part
    finally:
        peer.kill()
        for s in (ok, bad, wide):
            s.close()
    assert fw.read_jail("ct") == canonical_rules(rules)


@pytest.mark.parametrize("family", ["inet", "inet6"])
def test_mark_lane_drops_a_marked_socket_only(backend: tuple[Firewall, Harness], family: str) -> None:
    """A socket carrying the jail's mark (socket_marks sets it on a live process's sockets) is
    dropped going out and coming in; an unmarked one beside it is not."""
    fw, _ = backend
    mark = Match(family, mark=0x5000000, mark_mask=0xFF000000)
    fw.sync_jail(JailRules("mk", out_selectors=(mark,), in_selectors=(mark,)))
    rx, rx_t = receiver(LOOPBACK[family])
    marked_rx, _ = receiver(LOOPBACK[family])
    marked_rx.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x5000000)
    with rx, marked_rx, socket.socket(AF[family], socket.SOCK_DGRAM) as plain:
        with socket.socket(AF[family], socket.SOCK_DGRAM) as marked:
            marked.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x5000000)
            assert xt.send(marked, family, rx.getsockname()[1], 5) == 5  # EPERM: dropped going out
        assert xt.send(plain, family, rx.getsockname()[1], 5) == 0
        assert xt.send(plain, family, marked_rx.getsockname()[1], 3) == 0  # dropped coming in
        assert xt.drain(rx) == 5 and xt.drain(marked_rx, settle=0) == 0, rx_t
    c = fw.counters()["mk"]
    assert (c.inet if family == "inet" else c.inet6).dropped_packets == 8


def test_resync_changes_nothing_and_rules_read_back(backend: tuple[Firewall, Harness]) -> None:
    fw, harness = backend
    rx, tx, port = xt.udp_pair("inet")
    rules = JailRules(
        "idem",
        out_selectors=(Match("inet", "udp", dport=port), Match("inet6", "udp", dport=port)),
        in_selectors=(Match("inet", "tcp", dport=port),),
        out_allow=(Match("inet", dst="10.0.0.0/8"), Match("inet6", "tcp", dst="fd00::/8", dport=443)),
    )
    with rx, tx:
        fw.sync_jail(rules)
        assert xt.send(tx, "inet", port, 7) == 7
        before, counted = harness.ours(), fw.counters()["idem"]
        fw.sync_jail(rules)
        fw.sync_jails([rules])
        assert harness.ours() == before  # nothing replaced: counters kept too
        assert fw.counters()["idem"] == counted and counted.inet.dropped_packets == 7
    assert fw.read_jail("idem") == canonical_rules(rules)
    assert fw.jail_names() == {"idem"}


def test_remove_leaves_nothing_and_foreign_rules_untouched(backend: tuple[Firewall, Harness]) -> None:
    fw, harness = backend
    harness.add_foreign(7)
    foreign = harness.foreign()
    a = JailRules(
        "ra", out_selectors=(Match("inet", "udp", dport=9),), fwd_selectors=(Match("inet6", in_iface="x0"),)
    )
    b = JailRules("rb", in_selectors=(Match("inet6", "tcp", dport=22),))
    fw.sync_jails([a, b])
    assert fw.jail_names() == {"ra", "rb"}
    fw.remove_jail("ra")
    assert fw.jail_names() == {"rb"} and fw.read_jail("ra") is None
    assert fw.read_jail("rb") == canonical_rules(b)
    fw.remove_jail("rb")
    fw.remove_jail("rb")  # absent: no error
    assert fw.jail_names() == set() and fw.counters() == {}
    assert harness.netjail_left() == []
    assert harness.foreign() == foreign


@pytest.fixture
def listeners() -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(bind: str, netns: str | None = None) -> Listener:
        started.append(start_listener(bind, netns))
        return started[-1]

    yield start
    for listener in started:
        listener.stop()


def test_nat_masquerades_a_netns_jail_and_is_removed(
    backend: tuple[Firewall, Harness],
    make_host: Callable[[], Host],
    uniq: Callable[[str], str],
    listeners: Any,
) -> None:
    """A netns jail's veth link, created with this backend doing the NAT: the far host sees our
    side of its link (the traffic was masqueraded); removing the jail's NAT leaves nothing."""
    fw, harness = backend
    harness.add_foreign(8)
    foreign = harness.foreign()
    host = make_host()
    remote4, remote6 = listeners(host.addr4, host.netns), listeners(host.addr6, host.netns)
    jail = uniq("nc")
    info = create_netns(jail, veth=True, firewall=fw)
    try:
        assert fw.masquerades() == {jail: tuple(sorted(info.prefixes))}
        t4, t6 = f"connect:{host.addr4}:{remote4.port}", f"connect:{host.addr6}:{remote6.port}"
        rc, out = probe(t4, t6, exit_code=9, user="nobody", netns=info.name)
        assert rc == 9 and out[t4]["reply"] == "hello" and out[t6]["reply"] == "hello", out
        assert (remote4.next_peer(), remote6.next_peer()) == (host.gw4, host.gw6)
        fw.sync_masquerade(jail, list(info.prefixes))  # idempotent
        assert fw.masquerades() == {jail: tuple(sorted(info.prefixes))}
        fw.remove_masquerade(jail)
        assert fw.masquerades() == {}
        fw.remove_masquerade(jail)  # absent: no error
    finally:
        remove_netns(jail, firewall=fw)
    assert harness.netjail_left() == []
    assert harness.foreign() == foreign


def test_reset_removes_everything_of_netjails_only(backend: tuple[Firewall, Harness]) -> None:
    fw, harness = backend
    harness.add_foreign(9)
    foreign = harness.foreign()
    fw.sync_jails(
        [
            JailRules("z1", out_selectors=(Match("inet", "udp", dport=1),)),
            JailRules(
                "z2",
                fwd_selectors=(Match("inet6", out_iface="y0"),),
                in_allow=(Match("inet6", src="::1/128"),),
            ),
        ]
    )
    fw.sync_masquerade("z1", ["10.231.9.0/30", "fd00:231:9::/64"])
    fw.reset()
    fw.reset_masquerade()
    assert fw.jail_names() == set() and fw.counters() == {} and fw.masquerades() == {}
    assert harness.netjail_left() == []
    assert harness.foreign() == foreign
    fw.reset()  # nothing left: still fine
    fw.reset_masquerade()


def test_name_length_limit_is_the_backends(backend: tuple[Firewall, Harness]) -> None:
    """The backend's limit is the one jail names are checked against: its longest name is held
    and read back, one more character is refused with nothing written."""
    fw, harness = backend
    longest = fw.limits().max_jail_name
    assert names.max_jail_name() == longest
    assert len(names.derive_jail_name("x" * 100, "-12345")) == longest
    name = "n" * longest
    fw.sync_jail(JailRules(name, out_selectors=(Match("inet", "udp", dport=5),)))
    assert fw.jail_names() == {name} and fw.read_jail(name) is not None
    before = harness.ours()
    too_long = JailRules(name + "n", out_selectors=(Match("inet", "udp", dport=6),))
    with pytest.raises(BadInput, match=f"1-{longest} characters"):
        fw.sync_jail(too_long)
    with pytest.raises(BadInput):
        fw.sync_masquerade(name + "n", ["10.231.9.0/30"])
    assert harness.ours() == before and fw.masquerades() == {}
