"""gid-owner jails: a netjail group as the launched command's primary group, matched by
`-m owner --gid-owner` (the rule is added by the test, in the test's private netns)."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import subprocess
from collections.abc import Callable, Iterator

import pytest
from netjail.backends.launch.credentials import default_user
from netjail.backends.launch.groups import ensure_group, group_name, list_netjail_groups, remove_group

from tests.conftest import Host
from tests.integration.launch_support import Listener, probe, start_listener, tcp_reply

TOOLS = ("iptables-legacy", "ip6tables-legacy")


@pytest.fixture
def jail_group(uniq: Callable[[str], str]) -> Iterator[tuple[str, int]]:
    jail = uniq("g")
    gid, created = ensure_group(jail)
    assert created
    yield jail, gid
    remove_group(jail)


@pytest.fixture
def gid_drop_rule(jail_group: tuple[str, int]) -> Iterator[int]:
    """OUTPUT -m owner --gid-owner GID -j DROP in both families; yields the gid."""
    _, gid = jail_group
    rule = ["OUTPUT", "-m", "owner", "--gid-owner", str(gid), "-j", "DROP"]
    for tool in TOOLS:
        subprocess.run([tool, "-w", "-A", *rule], check=True)
    yield gid
    for tool in TOOLS:
        subprocess.run([tool, "-w", "-D", *rule], check=True)


@pytest.fixture
def host_listeners(make_host: Callable[[], Host]) -> Iterator[tuple[Host, Listener, Listener]]:
    host = make_host()
    l4, l6 = start_listener(host.addr4, host.netns), start_listener(host.addr6, host.netns)
    yield host, l4, l6
    l4.stop()
    l6.stop()


def dropped(gid: int) -> int:
    total = 0
    for tool in TOOLS:
        out = subprocess.run([f"{tool}-save", "-c"], capture_output=True, text=True, check=True).stdout
        for m in re.finditer(rf"^\[(\d+):\d+\] -A OUTPUT -m owner --gid-owner {gid} -j DROP$", out, re.M):
            total += int(m.group(1))
    return total


def test_group_is_created_once_and_removed(uniq: Callable[[str], str]) -> None:
    jail = uniq("g")
    name = group_name(jail)
    gid, created = ensure_group(jail)
    try:
        assert created and grp.getgrnam(name).gr_gid == gid
        assert gid < 1000, "a system group"
        assert ensure_group(jail) == (gid, False)
        assert list_netjail_groups()[jail] == gid
    finally:
        assert remove_group(jail) is True
    assert subprocess.run(["getent", "group", name], capture_output=True).returncode == 2
    assert remove_group(jail) is False
    assert jail not in list_netjail_groups()


@pytest.mark.parametrize("user", [None, "nobody"])
def test_jail_gid_is_the_primary_group(jail_group: tuple[str, int], user: str | None) -> None:
    _, gid = jail_group
    rc, out = probe("status", exit_code=6, user=user, gid=gid)
    assert rc == 6
    assert out["status"]["Gid"] == f"{gid} {gid} {gid} {gid}"  # real, effective, saved, filesystem
    pw = pwd.getpwnam(user or default_user())
    assert out["status"]["Uid"] == f"{pw.pw_uid} {pw.pw_uid} {pw.pw_uid} {pw.pw_uid}"
    own_groups = {str(g) for g in os.getgrouplist(pw.pw_name, pw.pw_gid)}
    assert set(out["status"]["Groups"].split()) == own_groups, "the user's own groups, as initgroups"


def test_gid_owner_rule_drops_the_jailed_command_only(
    host_listeners: tuple[Host, Listener, Listener], gid_drop_rule: int
) -> None:
    host, l4, l6 = host_listeners
    gid = gid_drop_rule
    t4, t6 = f"connect:{host.addr4}:{l4.port}", f"connect:{host.addr6}:{l6.port}"
    rc, out = probe(t4, t6, exit_code=3, gid=gid)
    assert rc == 3
    # TCP retransmits a SYN dropped in OUTPUT until the probe's connect timeout.
    assert out[t4]["errno"] == errno.ETIMEDOUT
    assert out[t6]["errno"] == errno.ETIMEDOUT
    assert dropped(gid) >= 2
    # Not jailed: the test itself, and the same probe without the group.
    assert tcp_reply(host.addr4, l4.port) == tcp_reply(host.addr6, l6.port) == "hello"
    _, free = probe(t4, t6)
    assert free[t4] == free[t6] == {"errno": 0, "reply": "hello"}
