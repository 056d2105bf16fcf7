"""Other tools writing the firewall while a jail holds: a foreign `nft flush ruleset` (Debian's
stock /etc/nftables.conf starts with one), a foreign `iptables-legacy -F OUTPUT`, a foreign
nftables table that accepts everything. Runs in each backend's pass (tests/run_parallel.py).

What a writer removes of the backend in use is re-created by the watcher's reconciliation within
its pass interval: measured at the receiver (the blocked flow gets through while it is gone and
is cut again after at most one pass). What belongs to the other backend's world leaves the jail
as it is. An accept in another table does not reopen a jail with either backend: nftables'
drop is final whatever another table accepts (docs/kernel-facts.md #12), and an nf_tables accept
ends only that table's chain, not xtables-legacy's OUTPUT hook.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netjail.backends.jails import watcher

from tests import firewall_probe
from tests.conftest import Peer
from tests.integration.test_block import CLI, rises, settle_count

WATCH = 1.0  # the watcher's pass interval for these jails
# one pass may start just before the write and the next one take long on a loaded machine
MARGIN = 3.0
QUIET = 1.0  # the receiver's count unchanged this long (50 datagrams' worth): cut
WRITERS = {
    "nft flush ruleset": ["nft", "flush", "ruleset"],
    "iptables-legacy -F OUTPUT": ["iptables-legacy", "-w", "-F", "OUTPUT"],
}
# the writer that removes what this backend holds (the other one never sees it)
OPENS = {"nftables": "nft flush ruleset", "iptables": "iptables-legacy -F OUTPUT"}
ACCEPT_ALL = """
table inet foreign {
    chain out { type filter hook output priority -100; accept; }
    chain in { type filter hook input priority -100; accept; }
}
"""


@pytest.fixture
def blocked(cli: CLI, spawn_peer: Callable[..., Peer], state_dir: Path) -> Iterator[tuple[Peer, Peer, int]]:
    """(receiver, jailed sender, watcher PID): a UDP flow on loopback cut by a jail "fw"."""
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"], interval=0.02)
    assert rises(recv, "received")
    out = cli("block", str(sender.pid), "--jail", "fw", env={watcher.INTERVAL_ENV: str(WATCH)})
    assert out.returncode == 0, out.stderr
    settle_count(recv, "received")
    pid = None
    for _ in range(100):
        if pid := watcher.running(state_dir):
            break
        time.sleep(0.05)
    assert pid, "block started no watcher"
    yield recv, sender, pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def cut_again(recv: Peer, start: int, since: float, limit: float) -> tuple[float, int]:
    """(seconds from `since` to the last datagram that got through, datagrams received since
    `start` was read) once the receiver's count stood still for QUIET; fails while it still moves
    `limit` seconds after `since`."""
    last, changed = recv.value("received"), since
    while True:
        time.sleep(0.02)
        now, count = time.monotonic(), recv.value("received")
        if count != last:
            last, changed = count, now
        elif now - changed >= QUIET:
            return changed - since, last - start
        if changed - since > limit:
            raise AssertionError(f"still receiving {changed - since:.1f} s after the write ({last - start})")


def foreign_write(argv: list[str]) -> float:
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_foreign_flush_is_repaired_within_a_watcher_pass(
    blocked: tuple[Peer, Peer, int], writer: str
) -> None:
    """With the watcher paused, the write opens the flow (it removed what this backend holds) or
    leaves it cut (it did not); the watcher's next pass cuts it again. Then the same with the
    watcher running: cut again within one pass interval of the write."""
    recv, _, pid = blocked
    opens = OPENS[firewall_probe.backend()] == writer
    os.kill(pid, signal.SIGSTOP)
    try:
        start = recv.value("received")
        foreign_write(WRITERS[writer])
        if opens:
            assert rises(recv, "received"), f"{writer} did not open the jail: the test proves nothing"
        else:
            time.sleep(QUIET)
            assert recv.value("received") == start, f"{writer} opened a jail it cannot see"
    finally:
        os.kill(pid, signal.SIGCONT)
    took, leaked = cut_again(recv, start, time.monotonic(), WATCH + MARGIN)
    print(f"{writer}, watcher paused: cut {took:.2f} s after it resumed, {leaked} datagrams through")

    start = recv.value("received")
    took, leaked = cut_again(recv, start, foreign_write(WRITERS[writer]), WATCH + MARGIN)
    print(f"{writer}, watcher running: cut {took:.2f} s after the write, {leaked} datagrams through")
    assert opens or leaked == 0, f"{writer}: {leaked} datagrams through a jail it cannot see"
    assert firewall_probe.has_rules("fw")
    assert firewall_probe.dropped("fw") > 0


def test_a_foreign_tables_accept_does_not_reopen_a_jail(cli: CLI, blocked: tuple[Peer, Peer, int]) -> None:
    """Another table accepting every packet before netjail's hooks (priority -100 < -10): the
    jailed sender stays cut through several watcher passes, its drops keep being counted, and
    the foreign table is neither removed nor changed (nothing outside netjail's is touched)."""
    recv, _, _ = blocked
    subprocess.run(["nft", "-f", "-"], input=ACCEPT_ALL, text=True, check=True)
    try:
        listed = subprocess.run(["nft", "list", "table", "inet", "foreign"], capture_output=True, text=True)
        start, dropped = recv.value("received"), firewall_probe.dropped("fw")
        time.sleep(3 * WATCH + 0.5)
        assert recv.value("received") == start, "the foreign table's accept reopened the jail"
        assert firewall_probe.dropped("fw") > dropped + 10
        now = subprocess.run(["nft", "list", "table", "inet", "foreign"], capture_output=True, text=True)
        assert now.returncode == 0 and now.stdout == listed.stdout, now.stderr
        assert cli("reset").returncode == 0
        after = subprocess.run(["nft", "list", "table", "inet", "foreign"], capture_output=True, text=True)
        assert after.stdout == listed.stdout, "reset touched another tool's table"
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "foreign"], capture_output=True)
