"""Helpers shared by the launch tests: run the probe jailed, and listeners that report who
connected (so a test can tell a masqueraded source from a routed one)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import queue
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netjail.backends.launch.credentials import default_user
from netjail.backends.launch.spawn import exit_status, spawn_jailed

from tests.conftest import python_for

PROBE = Path(__file__).resolve().parent / "launch_probe.py"


def probe(
    *actions: str, exit_code: int = 0, user: str | None = None, **jail: Any
) -> tuple[int, dict[str, Any]]:
    """Run launch_probe.py jailed (spawn_jailed keyword arguments in `jail`): (exit code, JSON)."""
    runner = user or default_user()
    as_us = runner == pwd.getpwuid(os.geteuid()).pw_name
    argv = [*python_for(None if as_us else runner), str(PROBE), "--exit", str(exit_code), *actions]
    proc = spawn_jailed(argv, user=user, stdout=subprocess.PIPE, **jail)
    out, _ = proc.communicate(timeout=60)
    rc = exit_status(proc.returncode)
    lines = out.decode().strip().splitlines()
    assert lines, f"probe printed nothing (exit {rc})"
    return rc, json.loads(lines[-1])


@dataclass
class Listener:
    """launch_probe.py listen, optionally inside a netns; `peers` receives each client address."""

    proc: subprocess.Popen[str]
    port: int = 0
    peers: queue.Queue[str] = field(default_factory=queue.Queue)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("PEER "):
                self.peers.put(line.split()[1])

    def next_peer(self, timeout: float = 5.0) -> str:
        return self.peers.get(timeout=timeout)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def start_listener(bind: str, netns: str | None = None) -> Listener:
    cmd = [*python_for(None), str(PROBE), "listen", bind]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.startswith("READY "), f"listener did not start: {ready!r}"
    listener = Listener(proc, int(ready.split()[1]))
    threading.Thread(target=listener._read, daemon=True).start()
    return listener


def tcp_reply(host: str, port: int) -> str:
    """Connect from the test's own process (unjailed) and read the greeting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect((host, port))
        return s.makefile().readline().strip()


def add_veth_pair(name: str) -> None:
    """A veth pair `name` / `name`p, both up, in the current netns: a link to put addresses and
    routes on (this kernel has no dummy driver)."""
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True)
    subprocess.run(["ip", "link", "set", f"{name}p", "up"], check=True)


@contextlib.contextmanager
def default_route(via: str) -> Iterator[None]:
    """A default route in the test's namespace for the time of a `with` (pasta needs one)."""
    subprocess.run(["ip", "route", "add", "default", "via", via], check=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "route", "del", "default", "via", via], capture_output=True)


def pasta_processes(netns_prefix: str) -> list[int]:
    """pasta processes serving one of this test session's namespaces."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"pasta")
            and any(f"/run/netns/{netns_prefix}".encode() in a for a in argv)
        ):
            found.append(int(entry.name))
    return found
