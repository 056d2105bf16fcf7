"""Issue 8 finding 8: a netns jail reaches this host's own addresses in no protocol, not only
TCP/UDP (UDP-Lite was the proven leak), while its allow-list still works over IPv4 and IPv6
(IPv6 neighbour discovery over the link must survive the drop)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import python_for
from tests.integration.launch_support import Listener, start_listener
from tests.integration.test_block import CLI

PROBE = Path(__file__).with_name("host_probe.py")
IPPROTO_UDPLITE = 136


class Counter:
    """Receivers on every address of this (the host's) namespace, counting what arrives."""

    def __init__(self, family: int, kind: int, proto: int, bind: tuple[str, int]) -> None:
        self.sock = socket.socket(family, kind, proto)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind(bind)
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[bytes, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                self.seen.append(self.sock.recvfrom(2048))
            except OSError:
                return


@pytest.fixture
def allowed(make_host: Callable[..., Any]) -> Iterator[tuple[Any, Listener]]:
    host = make_host()
    listener = start_listener("::", netns=host.netns)
    yield host, listener
    listener.stop()


def run_jailed(cli: CLI, host: Any, *actions: str, user: str = "nobody") -> dict[str, Any]:
    argv = [*python_for(user), str(PROBE), *actions]
    # the veth link: this host is the jail's gateway (test_launch_pasta.py: the pasta link)
    opts = ("--link", "veth", "--allow", host.addr4, "--allow", host.addr6)
    out = cli("run", "--netns", *opts, "--user", user, "--", *argv)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_udplite_from_a_netns_jail_never_reaches_the_host(cli: CLI, allowed: Any) -> None:
    host, listener = allowed
    v4 = Counter(socket.AF_INET, socket.SOCK_DGRAM, IPPROTO_UDPLITE, ("0.0.0.0", 0))
    v6 = Counter(socket.AF_INET6, socket.SOCK_DGRAM, IPPROTO_UDPLITE, ("::", v4.port))
    seen = run_jailed(
        cli,
        host,
        f"udplite:{v4.port}",
        f"connect:{host.addr4}:{listener.port}",
        f"connect:[{host.addr6}]:{listener.port}",
    )
    sent = seen[f"udplite:{v4.port}"]
    assert sent["gw4"] and sent["gw6"], sent
    assert sent["v4"] == 0 and sent["v6"] == 0, "the jail could not even send: test is void"
    assert v4.seen == [] and v6.seen == [], "UDP-Lite from the jail reached the host"
    # the allow-list still admits its hosts, over IPv6 too (neighbour discovery still works)
    assert seen[f"connect:{host.addr4}:{listener.port}"] == "hello"
    assert seen[f"connect:[{host.addr6}]:{listener.port}"] == "hello"


def test_ping_from_a_netns_jail_to_the_host_gets_no_reply(cli: CLI, allowed: Any) -> None:
    """The host is not on the allow-list (its addresses never are): ICMP echo is dropped too."""
    host, _ = allowed
    raw = Counter(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP, ("0.0.0.0", 0))
    seen = run_jailed(cli, host, "ping", user="root")
    assert seen["ping"] == "none"
    echoes = [data for data, _ in raw.seen if data[(data[0] & 0x0F) * 4] == 8]
    assert echoes == [], "the host's INPUT delivered the jail's echo request"
