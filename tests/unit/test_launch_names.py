"""Names of a jail's netns, veth and group (pure)."""

from __future__ import annotations

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.launch.groups import group_name
from netjail.backends.launch.netns import host_iface, netns_name

LONGEST = "a" * 23


def test_netns_and_group_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETJAIL_NETNS_PREFIX", raising=False)  # the suite sets one per session
    assert netns_name("web") == "netjail-web"
    assert group_name("web") == "netjail-web"
    assert len(group_name(LONGEST)) <= 32, "groupadd's name limit"


def test_netns_prefix_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETJAIL_NETNS_PREFIX", "netjail-t42-")
    assert netns_name("web") == "netjail-t42-web"


@pytest.mark.parametrize("jail", ["w", "web", "abcdefghijkl", "a.b_c-d", "abcdefghijklm", LONGEST, "Z9" * 11])
def test_host_iface_fits_ifnamsiz_and_is_stable(jail: str) -> None:
    name = host_iface(jail)
    assert name.startswith("nj-") and len(name) <= 15
    assert name == host_iface(jail)


def test_host_iface_keeps_short_names_and_hashes_long_ones() -> None:
    assert host_iface("abcdefghijkl") == "nj-abcdefghijkl"
    long_a, long_b = host_iface("abcdefghijklm"), host_iface("abcdefghijkln")
    assert long_a.startswith("nj-abcdef~") and long_b.startswith("nj-abcdef~")
    assert long_a != long_b


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "x" * 24])
def test_bad_jail_names_are_bad_input(bad: str) -> None:
    with pytest.raises(BadInput):
        netns_name(bad)
    with pytest.raises(BadInput):
        host_iface(bad)
    with pytest.raises(BadInput):
        group_name(bad)
