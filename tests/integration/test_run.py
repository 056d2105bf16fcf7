"""`netjail run` (netns, gid, seccomp) and `netjail block --user/--group`, through the real CLI,
against listeners on test hosts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import firewall_probe
from tests.conftest import (
    CGROUP2,
    CGROUP_PARENT,
    NETNS_PREFIX,
    PEERS,
    Peer,
    assert_lists_the_user,
    python_for,
    start_peer,
    uid_pids,
)
from tests.integration.launch_support import PROBE, Listener, default_route, pasta_processes, start_listener
from tests.integration.test_block import CLI, jail, jails, rises, settle_count


def run_probe(
    cli: CLI,
    *opts: str,
    actions: tuple[str, ...],
    exit_code: int = 3,
    user: str = "nobody",
    as_user: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """`netjail run OPTS --user USER -- python launch_probe.py --exit N ACTIONS`."""
    argv = [*python_for(user), str(PROBE), "--exit", str(exit_code), *actions]
    out = cli("run", *opts, "--user", user, "--", *argv, user=as_user)
    lines = out.stdout.strip().splitlines()
    assert lines, f"no output (exit {out.returncode}): {out.stderr}"
    return out.returncode, json.loads(lines[-1])


@pytest.fixture
def listeners(make_host: Callable[..., Any]) -> Iterator[Callable[[], tuple[Any, Listener]]]:
    made: list[Listener] = []

    def make() -> tuple[Any, Listener]:
        host = make_host()
        made.append(start_listener("0.0.0.0", netns=host.netns))
        return host, made[-1]

    yield make
    for listener in made:
        listener.stop()


def leftovers() -> list[str]:
    found = (
        [n for n in os.listdir("/run/netns") if n.startswith(NETNS_PREFIX)]
        if os.path.isdir("/run/netns")
        else []
    )
    found += firewall_probe.netjail_left()
    parent = CGROUP2 / CGROUP_PARENT
    found += [str(p) for p in parent.iterdir()] if parent.is_dir() else []
    return found


def test_seccomp_refuses_inet_sockets_keeps_unix_and_the_exit_code(cli: CLI) -> None:
    rc, seen = run_probe(cli, "--seccomp", actions=("sockets",), exit_code=7)
    assert rc == 7
    s = seen["sockets"]
    assert (s["inet"], s["inet6"], s["packet"]) == (13, 13, 13)  # EACCES
    assert s["unix"] == 0 and s["netlink"] == 0


def test_seccomp_works_without_root(cli: CLI) -> None:
    rc, seen = run_probe(cli, "--seccomp", actions=("sockets",), exit_code=5, as_user="nobody")
    assert rc == 5 and seen["sockets"]["inet"] == 13 and seen["sockets"]["unix"] == 0


def test_netns_without_allow_has_loopback_only(cli: CLI, listeners: Any) -> None:
    host, listener = listeners()
    local = start_listener("127.0.0.1")
    try:
        rc, seen = run_probe(
            cli,
            "--netns",
            actions=(f"connect:{host.addr4}:{listener.port}", f"connect:127.0.0.1:{local.port}", "loopback"),
        )
    finally:
        local.stop()
    assert rc == 3
    assert seen[f"connect:{host.addr4}:{listener.port}"]["errno"] != 0
    assert seen[f"connect:127.0.0.1:{local.port}"]["errno"] != 0  # our loopback is not its loopback
    assert seen["loopback"] == "ok"
    assert jails(cli) == [] and leftovers() == []


@pytest.mark.parametrize("link", ["pasta", "veth"])
def test_netns_allow_list_reaches_only_the_allowed_host_and_counts(
    cli: CLI, listeners: Any, link: str
) -> None:
    a, la = listeners()
    b, lb = listeners()
    with default_route(a.addr4) if link == "pasta" else contextlib.nullcontext():
        rc, seen = run_probe(
            cli,
            "--netns",
            "--jail",
            "nsallow",
            "--keep",
            "--link",
            link,
            "--allow",
            f"{a.addr4}",
            actions=(f"connect:{a.addr4}:{la.port}", f"connect:{b.addr4}:{lb.port}"),
        )
    assert rc == 3
    assert seen[f"connect:{a.addr4}:{la.port}"] == {"errno": 0, "reply": "hello"}
    assert seen[f"connect:{b.addr4}:{lb.port}"]["errno"] != 0
    info = jail(cli, "nsallow")
    assert info["strategy"] == "netns" and info["link"] == link
    assert info["counters"]["dropped_packets"] > 0 and info["counters"]["allowed_packets"] > 0
    assert cli("unblock", "--jail", "nsallow").returncode == 0
    assert jails(cli) == [] and leftovers() == []


def test_gid_jail_drops_all_but_the_allowed_host(cli: CLI, listeners: Any) -> None:
    a, la = listeners()
    b, lb = listeners()
    rc, seen = run_probe(
        cli,
        "--gid",
        "--jail",
        "gidj",
        "--keep",
        "--allow",
        f"{a.addr4[:-2]}.0/24",
        actions=(f"connect:{a.addr4}:{la.port}", f"connect:{b.addr4}:{lb.port}", "loopback", "status"),
    )
    assert rc == 3
    assert seen[f"connect:{a.addr4}:{la.port}"] == {"errno": 0, "reply": "hello"}
    assert seen[f"connect:{b.addr4}:{lb.port}"]["errno"] != 0
    assert seen["loopback"] != "ok"  # loopback is not on the allow-list
    info = jail(cli, "gidj")
    assert info["strategy"] == "gid" and info["counters"]["dropped_packets"] > 0
    gid = subprocess.run(["getent", "group", "netjail-gidj"], capture_output=True, text=True).stdout
    assert gid and seen["status"]["Gid"].split()[0] == gid.split(":")[2]
    assert cli("unblock", "--jail", "gidj").returncode == 0
    assert subprocess.run(["getent", "group", "netjail-gidj"]).returncode == 2
    assert leftovers() == []


def test_gid_allow_loopback(cli: CLI) -> None:
    rc, seen = run_probe(cli, "--gid", "--allow-loopback", actions=("loopback",), exit_code=0)
    assert rc == 0 and seen["loopback"] == "ok"
    assert jails(cli) == [] and leftovers() == []


def test_user_block_drops_every_process_of_that_uid_and_no_other(
    cli: CLI, spawn_peer: Callable[..., Peer]
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    port = recv.info["lport"]
    theirs = [spawn_peer("udp-send", "127.0.0.1", port, user="nobody") for _ in range(2)]
    ours = spawn_peer("udp-send", "127.0.0.1", port)
    nobody = uid_pids(65534)

    out = cli("block", "--user", "nobody", "--yes", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert_lists_the_user({m["pid"] for m in result["members"]}, nobody, 65534)  # the preview
    assert {t.pid for t in theirs} <= nobody and ours.pid not in nobody
    for t in theirs:
        assert rises(t, "errors", by=10), "a process of the blocked user still sends"
    before = ours.value("sent")
    assert rises(ours, "sent", by=20) and ours.value("errors") == 0 and ours.value("sent") > before
    assert jail(cli, "user-nobody")["counters"]["dropped_packets"] >= 20
    assert cli("unblock", "--jail", "user-nobody").returncode == 0
    for t in theirs:
        errors = t.value("errors")
        assert rises(t, "sent", by=10) and t.value("errors") <= errors + 10


def test_user_block_asks_without_yes_and_refuses_root(cli: CLI) -> None:
    out = cli("block", "--user", "nobody")
    assert out.returncode == 2 and "--yes" in out.stderr
    out = cli("block", "--user", "root", "--yes")
    assert out.returncode == 2 and "root" in out.stderr
    out = cli("block", "--group", "no-such-group-x", "--yes")
    assert out.returncode == 2 and "no such group" in out.stderr
    assert jails(cli) == []


def test_reset_leaves_nothing_of_any_strategy(
    cli: CLI, spawn_peer: Callable[..., Peer], make_host: Callable[..., Any]
) -> None:
    sender = spawn_peer("udp-send", "127.0.0.1", 9)
    assert cli("block", str(sender.pid), "--jail", "rc").returncode == 0
    assert cli("block", "--group", "nogroup", "--yes").returncode == 0
    rc, _ = run_probe(
        cli,
        "--netns",
        "--keep",
        "--jail",
        "rn",
        "--link",
        "veth",
        "--allow",
        "10.9.9.0/24",
        actions=("loopback",),
        exit_code=0,
    )
    assert rc == 0
    with default_route(make_host().addr4):
        rc, _ = run_probe(
            cli,
            "--netns",
            "--keep",
            "--jail",
            "rp",
            "--allow",
            "10.9.9.0/24",
            actions=("loopback",),
            exit_code=0,
        )
    assert rc == 0
    assert pasta_processes(NETNS_PREFIX) != []
    rc, _ = run_probe(cli, "--gid", "--keep", "--jail", "rg", actions=("loopback",), exit_code=0)
    assert rc == 0
    assert sorted(j["name"] for j in jails(cli)) == ["group-nogroup", "rc", "rg", "rn", "rp"]
    assert leftovers() != []
    out = cli("reset")
    assert out.returncode == 0, out.stderr
    assert leftovers() == []
    assert pasta_processes(NETNS_PREFIX) == [], "reset left a pasta running"
    assert subprocess.run(["getent", "group", "netjail-rg"]).returncode == 2


def test_run_gid_refuses_root_and_groups_in_use(cli: CLI) -> None:
    out = cli("run", "--gid", "0", "--", "true")
    assert out.returncode == 2 and "root" in out.stderr
    # a group only this test's process uses: nogroup's processes (other test files run beside
    # this one) would fill the five the error names
    gid = next(g for g in range(61000 + os.getpid() % 1000, 65000) if not _group_in_use(g))
    cmd = ["setpriv", "--reuid=nobody", f"--regid={gid}", "--clear-groups", *python_for("nobody")]
    peers: list[Peer] = []
    try:
        peer = start_peer([*cmd, str(PEERS), "sleep", "--interval", "0.05"], peers)
        assert os.stat(f"/proc/{peer.pid}").st_gid == gid
        out = cli("run", "--gid", str(gid), "--", "true")
        assert out.returncode == 2 and "in use" in out.stderr and str(peer.pid) in out.stderr
        assert jails(cli) == [] and leftovers() == []
    finally:
        for p in peers:
            p.kill()


def _group_in_use(gid: int) -> bool:
    if subprocess.run(["getent", "group", str(gid)], capture_output=True).returncode == 0:
        return True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_gid == gid:
                    return True
    return False


def test_relaunch_validates_before_it_terminates(spawn_peer: Callable[..., Peer]) -> None:
    from netjail.backends.engine import Engine
    from netjail.backends.errors import BadInput
    from netjail.backends.model import LaunchRequest

    peer = spawn_peer("sleep")
    with pytest.raises(BadInput, match=r"10\.0\.0\.0/33"):
        Engine(spawn_watcher=False).relaunch(
            peer.pid, None, LaunchRequest((), "netns", allow=("10.0.0.0/33",))
        )
    assert peer.proc.poll() is None, "the process was killed for a request that was refused"


def test_relaunch_restarts_the_same_command_jailed(spawn_peer: Callable[..., Peer], cli: CLI) -> None:
    from netjail.backends.engine import Engine
    from netjail.backends.model import LaunchRequest

    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    assert rises(recv, "received")
    result = Engine(spawn_watcher=False).relaunch(sender.pid, None, LaunchRequest((), "netns", jail="again"))
    assert result.pid != sender.pid and sender.proc.wait(5) is not None
    cmdline = Path(f"/proc/{result.pid}/cmdline").read_bytes().split(b"\0")
    assert b"udp-send" in cmdline
    frozen = settle_count(recv, "received")
    time.sleep(0.5)
    assert recv.value("received") == frozen, "the relaunched sender still reaches the network"
    assert [j["strategy"] for j in jails(cli) if j["name"] == "again"] == ["netns"]
    assert open_netns_of(result.pid) != open_netns_of(os.getpid())
    os.kill(result.pid, 9)


def open_netns_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_counters_watch_needs_a_positive_interval(cli: CLI) -> None:
    out = cli("counters", "--watch", "-1")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_seccomp_jail_is_listed_as_not_countable(cli: CLI) -> None:
    proc = subprocess.Popen(
        [*python_for(None), "-m", "netjail.app.cli", "run", "--seccomp", "--jail", "sc", "--", "sleep", "30"]
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not [j for j in jails(cli) if j["name"] == "sc"]:
            time.sleep(0.1)
        [sc] = [j for j in jails(cli) if j["name"] == "sc"]
        assert sc["strategy"] == "seccomp" and sc["countable"] is False
        assert "not countable" in cli("list").stdout
        counters = {c["jail"]: c for c in json.loads(cli("counters", "--json").stdout)}
        assert counters["sc"]["countable"] is False
        ps = json.loads(cli("ps", "--json").stdout)
        assert any(p["jail"] == "sc" and p["name"] == "sleep" for p in ps), (
            "socketless jailed process missing"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_program_named_outside_ascii_gets_a_valid_default_jail(cli: CLI, tmp_path: Path) -> None:
    """The default jail name is derived from the program's name: letters outside A-Z a-z
    become '_', as the jail-name rule (and the netns, group and chain names) require."""
    prog = tmp_path / "prøg"
    prog.write_text("#!/bin/sh\nexit 3\n")
    prog.chmod(0o755)
    out = cli("run", "--netns", "--keep", "--user", "root", "--", str(prog))
    assert out.returncode == 3, out.stderr
    (info,) = jails(cli)
    assert info["name"] == f"pr_g-{info['name'].rsplit('-', 1)[1]}"
    assert cli("unblock", "--jail", info["name"]).returncode == 0
    assert jails(cli) == [] and leftovers() == []
