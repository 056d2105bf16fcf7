"""The mark range netjail owns and the values it hands to jails (pure parts of socket_marks)."""

from __future__ import annotations

import pytest
from netjail.backends.errors import BadInput, OperationFailed
from netjail.backends.firewall.base import Match, SetEntry
from netjail.backends.jails.rules import desired_rules
from netjail.backends.jails.socket_marks import DEFAULT_MASK, allocate, mark_mask
from netjail.backends.jails.state import JailState
from netjail.backends.jails.strategies.cgroup import CgroupState
from netjail.backends.model import Socket


def test_mask_default_and_hex() -> None:
    assert mark_mask("") == DEFAULT_MASK == 0xFF000000
    assert mark_mask("0x0ff00000") == 0x0FF00000
    assert mark_mask("f0") == 0xF0


@pytest.mark.parametrize("text", ["zz", "0", "0x101", "0x1ffffffff", "-0x10", "12.5"])
def test_bad_masks_refused(text: str) -> None:
    with pytest.raises(BadInput, match="NETJAIL_MARK_MASK"):
        mark_mask(text)


def test_values_are_allocated_inside_the_mask_and_free() -> None:
    assert allocate(0xFF000000, []) == 0x01000000
    assert allocate(0xFF000000, [0x01000000, 0x02000000]) == 0x03000000
    assert allocate(0x30, [0x10]) == 0x20
    with pytest.raises(OperationFailed, match="no free socket mark"):
        allocate(0x30, [0x10, 0x20, 0x30])


def test_marked_sockets_need_no_address_rule_either_way() -> None:
    marked = Socket("inet", "tcp", "127.0.0.1", 5000, "127.0.0.2", 80, "ESTABLISHED", 11)
    listener = Socket("inet", "tcp", "0.0.0.0", 8080, "0.0.0.0", 0, "LISTEN", 12)
    foreign = Socket("inet", "udp", "127.0.0.1", 5353, "127.0.0.3", 53, "ESTABLISHED", 13)
    jail = JailState(
        "j", detail=CgroupState("/nj/j", cgroups={"/nj/j/1.2": 7}), pre_inodes=[11, 12, 13], mark=0x2000000
    )
    jail.mark_mask, jail.marks = 0xFF000000, [[11, 0], [12, 0]]
    rules = desired_rules(jail, {1: (marked, listener, foreign)})
    assert rules is not None
    assert rules.out_selectors == (
        Match("inet", cgroup="/nj/j/1.2"),
        Match("inet6", cgroup="/nj/j/1.2"),
        Match("inet", mark=0x2000000, mark_mask=0xFF000000),
        Match("inet6", mark=0x2000000, mark_mask=0xFF000000),
        # not marked (a foreign mark): in the jail's fallback sets, its flow and its local port
        Match("inet", match_set="nj4-j-f", set_flags="src,src,dst"),
        Match("inet", match_set="nj4-j-s", set_flags="src,src"),
    )
    # coming in too, the marks say it (firewall/lanes.py): only the unmarked socket has rules
    assert rules.in_selectors == (
        Match("inet", match_set="nj4-j-f", set_flags="dst,dst,src"),
        Match("inet", mark=0x2000000, mark_mask=0xFF000000),
        Match("inet6", mark=0x2000000, mark_mask=0xFF000000),
        # established sockets opened inside, where early demux gives INPUT their cgroup
        Match("inet", cgroup="/nj/j/1.2"),
        Match("inet6", cgroup="/nj/j/1.2"),
    )
    assert rules.set_entries == (
        SetEntry("inet", "send", "udp", 5353),
        SetEntry("inet", "flow", "udp", 5353, "127.0.0.1", "127.0.0.3"),
    )
