"""Picking a jail's veth addresses from the pool (pure)."""

from __future__ import annotations

import pytest
from netjail.backends.errors import OperationFailed
from netjail.backends.launch.addr_pool import POOL_SIZE, block, index_of, pick_free


def test_block_layout() -> None:
    b = block(10)
    assert (b.prefix4, b.host4, b.ns4) == ("10.231.10.0/30", "10.231.10.1", "10.231.10.2")
    assert (b.prefix6, b.host6, b.ns6) == ("fd00:231:a::/64", "fd00:231:a::1", "fd00:231:a::2")
    assert b.prefixes == ("10.231.10.0/30", "fd00:231:a::/64")
    assert block(POOL_SIZE - 1).prefix4 == "10.231.255.0/30"
    with pytest.raises(ValueError):
        block(POOL_SIZE)


def test_first_block_when_nothing_overlaps() -> None:
    taken = ["0.0.0.0/0", "::/0", "127.0.0.0/8", "10.199.1.0/24", "fd00:199:1::/64", "fe80::/64"]
    assert pick_free(taken).index == 0


def test_default_routes_do_not_count_but_covering_prefixes_do() -> None:
    assert pick_free(["0.0.0.0/0"]).index == 0
    assert pick_free(["10.231.0.0/23"]).index == 2  # covers blocks 0 and 1
    assert pick_free(["10.231.0.2/32"]).index == 1  # one address inside block 0
    assert pick_free(["fd00:231::/47"]).index == 2  # IPv6 side counts on its own
    assert pick_free(["10.231.0.0/30", "fd00:231:1::/64"]).index == 2


def test_garbage_entries_are_ignored() -> None:
    assert pick_free(["not-a-prefix", "", "10.231.0.0/99"]).index == 0


def test_exhausted_pool_fails_with_one_line() -> None:
    with pytest.raises(OperationFailed, match=r"no free address block.*10\.231\.0\.0/16"):
        pick_free(["10.0.0.0/8"])


def test_index_of_round_trips() -> None:
    assert index_of("10.231.7.0/30") == 7
    assert index_of(block(200).prefix4) == 200
    assert index_of("10.232.7.0/30") is None
    assert index_of("nonsense") is None
