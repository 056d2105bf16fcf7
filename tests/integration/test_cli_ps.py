"""`netjail ps` end to end: the real CLI in a child process, real helper processes and sockets."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

from tests.conftest import Host, Peer

Cli = Callable[..., subprocess.CompletedProcess[str]]
PROCESS_KEYS = {
    "pid",
    "ppid",
    "name",
    "user",
    "uid",
    "gid",
    "cmdline",
    "start_time",
    "cgroup",
    "netns",
    "jail",
}
SOCKET_KEYS = {"family", "proto", "local_addr", "local_port", "remote_addr", "remote_port", "state", "inode"}


def ps_json(cli: Cli, *args: str, user: str | None = None) -> tuple[list[dict[str, Any]], str]:
    out = cli("ps", "--json", *args, user=user)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data, list)
    return data, out.stderr


def entry(data: list[dict[str, Any]], pid: int) -> dict[str, Any]:
    found = [p for p in data if p["pid"] == pid]
    assert len(found) == 1, f"pid {pid} appears {len(found)} times"
    return found[0]


def socks(p: dict[str, Any]) -> set[tuple[str, str, str, int, str, int, str]]:
    return {
        (
            s["family"],
            s["proto"],
            s["local_addr"],
            s["local_port"],
            s["remote_addr"],
            s["remote_port"],
            s["state"],
        )
        for s in p["sockets"]
    }


def test_json_reports_listener_pair_udp_and_ipv6_helpers(cli: Cli, spawn_peer: Callable[..., Peer]) -> None:
    listener = spawn_peer("tcp-listen", "127.0.0.1", 0)
    lport = listener.info["lport"]
    client = spawn_peer("tcp-client", "127.0.0.1", lport)
    assert client.wait_for(lambda c: int(c.get("ok", 0)) > 0)  # type: ignore[call-overload]
    cport = client.info["lport"]
    udp = spawn_peer("udp-bind", "127.0.0.1", 0)
    v6 = spawn_peer("tcp-listen", "::1", 0)
    sleeper = spawn_peer("sleep")

    data, _ = ps_json(cli)
    assert sleeper.pid not in {p["pid"] for p in data}  # no inet socket: only with --all
    for p in data:
        assert PROCESS_KEYS | {"sockets"} <= p.keys()
        assert p["jail"] is None and isinstance(p["cmdline"], list)
        for s in p["sockets"]:
            assert s.keys() >= SOCKET_KEYS and s["inode"] > 0

    assert socks(entry(data, listener.pid)) == {
        ("inet", "tcp", "127.0.0.1", lport, "0.0.0.0", 0, "LISTEN"),
        ("inet", "tcp", "127.0.0.1", lport, "127.0.0.1", cport, "ESTABLISHED"),
    }
    assert socks(entry(data, client.pid)) == {
        ("inet", "tcp", "127.0.0.1", cport, "127.0.0.1", lport, "ESTABLISHED")
    }
    assert socks(entry(data, udp.pid)) == {
        ("inet", "udp", "127.0.0.1", udp.info["lport"], "0.0.0.0", 0, "UNCONN")
    }
    assert socks(entry(data, v6.pid)) == {("inet6", "tcp", "::1", v6.info["lport"], "::", 0, "LISTEN")}

    p = entry(data, udp.pid)
    assert p["ppid"] == os.getpid() and p["user"] == "root" and p["uid"] == 0 and p["gid"] == 0
    assert p["cmdline"][2:5] == ["udp-bind", "127.0.0.1", "0"]
    assert p["netns"] == os.stat("/proc/self/ns/net").st_ino
    assert isinstance(p["start_time"], int) and p["cgroup"].startswith("/")


def test_helper_in_a_second_netns_carries_that_netns(
    cli: Cli, spawn_peer: Callable[..., Peer], make_host: Callable[[], Host]
) -> None:
    host = make_host()
    remote = spawn_peer("udp-bind", host.addr6, 0, netns=host.netns)
    local = spawn_peer("udp-bind", "127.0.0.1", 0)
    data, _ = ps_json(cli)
    ours = os.stat("/proc/self/ns/net").st_ino
    theirs = os.stat(f"/run/netns/{host.netns}").st_ino
    assert theirs != ours
    assert entry(data, remote.pid)["netns"] == theirs
    assert socks(entry(data, remote.pid)) == {
        ("inet6", "udp", host.addr6, remote.info["lport"], "::", 0, "UNCONN")
    }
    assert entry(data, local.pid)["netns"] == ours

    table = cli("ps")
    line = next(row for row in table.stdout.splitlines() if row.split()[0] == str(remote.pid))
    assert f"{theirs}*" in line  # marked as another namespace than netjail's


def test_unprivileged_run_lists_what_it_may_and_says_what_it_may_not(
    cli: Cli, spawn_peer: Callable[..., Peer]
) -> None:
    mine = spawn_peer("udp-bind", "127.0.0.1", 0, user="nobody")
    roots = spawn_peer("tcp-listen", "127.0.0.1", 0)
    data, stderr = ps_json(cli, "--all", user="nobody")

    own = entry(data, mine.pid)
    assert own["user"] == "nobody" and own["uid"] == 65534
    assert own["netns"] == os.stat("/proc/self/ns/net").st_ino
    assert socks(own) == {("inet", "udp", "127.0.0.1", mine.info["lport"], "0.0.0.0", 0, "UNCONN")}

    other = entry(data, roots.pid)  # listed, but its fds and namespace are not ours to read
    assert other["user"] == "root" and other["cmdline"][2] == "tcp-listen"
    assert other["sockets"] == [] and other["netns"] is None and other["exe"] == ""

    notes = [line for line in stderr.splitlines() if line]
    assert notes and all(line.startswith("netjail: note: ") for line in notes)
    assert any("fds of" in line and "permission denied" in line for line in notes)
    assert any("owners of" in line and "not visible" in line for line in notes)
    assert "Traceback" not in stderr


def test_table_by_default_and_all(cli: Cli, spawn_peer: Callable[..., Peer]) -> None:
    listener = spawn_peer("tcp-listen", "127.0.0.1", 0)
    client = spawn_peer("tcp-client", "127.0.0.1", listener.info["lport"])
    sleeper = spawn_peer("sleep")
    out = cli("ps")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["PID", "USER", "NAME", "SOCKS", "LISTEN", "REMOTE", "NETNS", "JAIL"]
    rows = {int(line.split()[0]): line.split() for line in lines[1:] if line.split()[0].isdigit()}
    assert sleeper.pid not in rows
    assert rows[listener.pid][1] == "root" and rows[listener.pid][3] == "2"  # listener + accepted
    assert rows[listener.pid][4] == f"tcp/{listener.info['lport']}"
    assert rows[client.pid][5] == f"127.0.0.1:{listener.info['lport']}"
    assert rows[client.pid][7] == "-"
    # columns line up: every row starts its NAME where the header does
    col = lines[0].index("NAME")
    assert all(line[col - 2 : col] == "  " for line in lines[1 : len(rows) + 1])

    every = cli("ps", "--all")
    assert str(sleeper.pid) in {line.split()[0] for line in every.stdout.splitlines()}


def test_pid_and_filter(cli: Cli, spawn_peer: Callable[..., Peer]) -> None:
    sleeper = spawn_peer("sleep")
    udp = spawn_peer("udp-bind", "::1", 0)
    data, _ = ps_json(cli, "--pid", str(sleeper.pid))  # --pid shows it even without sockets
    assert [p["pid"] for p in data] == [sleeper.pid] and data[0]["sockets"] == []

    data, _ = ps_json(cli, "--filter", "udp-bind")
    assert udp.pid in {p["pid"] for p in data}
    assert all("udp-bind" in " ".join(p["cmdline"]) for p in data)
    data, _ = ps_json(cli, "--all", "--filter", str(sleeper.pid))
    assert sleeper.pid in {p["pid"] for p in data}
    data, _ = ps_json(cli, "--filter", "no-such-process-name-here")
    assert data == []


def test_unknown_pid_is_bad_input(cli: Cli) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    for args in (("--pid", str(gone.pid)), ("--pid", "notapid")):
        out = cli("ps", *args)
        assert out.returncode == 2
        assert out.stdout == ""
        assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("netjail: ")
    assert f"no such process: {gone.pid}" in cli("ps", "--pid", str(gone.pid)).stderr


def test_json_is_compact_by_default_and_indented_with_pretty(
    cli: Cli, spawn_peer: Callable[..., Peer]
) -> None:
    """Like `ip -j` / `ip -j -p`: one line by default, `--pretty`/`-p` (before or after the
    command) indents the same document."""
    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    compact = cli("ps", "--json", "--pid", str(peer.pid))
    assert compact.returncode == 0, compact.stderr
    assert compact.stdout.endswith("\n") and compact.stdout.count("\n") == 1
    assert ", " not in compact.stdout and '": ' not in compact.stdout  # no separator padding
    for args in (
        ("ps", "--json", "--pid", str(peer.pid), "--pretty"),
        ("-p", "ps", "--json", "--pid", str(peer.pid)),
    ):
        pretty = cli(*args)
        assert pretty.returncode == 0, pretty.stderr
        assert pretty.stdout.startswith('[\n  {\n    "pid": ')
        assert json.loads(pretty.stdout) == json.loads(compact.stdout)
