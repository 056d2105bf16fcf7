"""The masquerade chain's edit plan and the MASQUERADE rule encoding (no kernel access)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from netjail.backends.firewall.base import Match
from netjail.backends.firewall.nat import (
    MASQUERADE,
    canonical_sources,
    edit_nat_chain,
    jail_comment,
    masquerade_entry,
)
from netjail.backends.firewall.plan import Append, Delete, RuleKey


def key(src: str, jail: str, iface: str | None = None) -> RuleKey:
    fam = "inet6" if ":" in src else "inet"
    return (MASQUERADE, Match(fam, src=src, out_iface=iface), jail_comment(jail))


A1, A2, B1 = key("10.231.1.0/30", "a"), key("10.231.2.0/30", "a"), key("10.231.3.0/30", "b")


def test_unchanged_chain_needs_no_edit() -> None:
    assert edit_nat_chain([(MASQUERADE, A1), (MASQUERADE, B1)], jail_comment("a"), [A1]) == []


def test_other_jails_stay_and_missing_rules_are_appended() -> None:
    edits = edit_nat_chain([(MASQUERADE, B1)], jail_comment("a"), [A1, A2])
    assert edits == [Append(A1), Append(A2)]


def test_stale_duplicate_and_foreign_rules_go_last_first() -> None:
    current = [
        (MASQUERADE, A2),  # no longer wanted
        (MASQUERADE, B1),  # another jail: kept
        (MASQUERADE, A1),
        (MASQUERADE, A1),  # duplicate
        ("", None),  # undecodable: our chain holds nothing else
        ("ACCEPT", ("ACCEPT", Match("inet"), None)),
    ]
    assert edit_nat_chain(current, jail_comment("a"), [A1]) == [Delete(5), Delete(4), Delete(3), Delete(0)]


def test_removing_a_jail_and_resetting() -> None:
    current = [(MASQUERADE, A1), (MASQUERADE, B1)]
    assert edit_nat_chain(current, jail_comment("a"), []) == [Delete(0)]
    assert edit_nat_chain(current, None, []) == [Delete(1), Delete(0)]


def test_canonical_sources_split_families_and_drop_host_bits() -> None:
    assert canonical_sources(["10.231.4.2/30", "fd00:231:4::2/64", "10.231.4.0/30"]) == {
        "inet": ["10.231.4.0/30"],
        "inet6": ["fd00:231:4::/64"],
    }


_REFERENCE = """
import sys
from netjail.backends.firewall.base import Match
from netjail.backends.firewall.rule_build import _build  # python-iptables resolving the target
fam, src = sys.argv[1:]
sys.stdout.write(_build(Match(fam, src=src, out_iface="eth1"), "MASQUERADE", "netjail:x").hex())
"""


@pytest.mark.parametrize(("family", "src"), [("inet", "10.231.0.0/30"), ("inet6", "fd00:231::/64")])
def test_masquerade_entry_is_byte_identical_to_python_iptables(family: str, src: str) -> None:
    """python-iptables can encode MASQUERADE for one family per process only: each reference
    entry comes from a fresh interpreter."""
    ref = subprocess.run(
        [sys.executable, "-c", _REFERENCE, family, src], capture_output=True, text=True, check=True
    ).stdout
    ours = masquerade_entry(Match(family, src=src, out_iface="eth1"), "netjail:x")
    assert ours.hex() == ref
