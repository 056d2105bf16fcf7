"""Which families netjail writes and what it says about the others (pure parts)."""

from __future__ import annotations

from netjail.backends.doctor.checks import families_check
from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.firewall.families import FamilySupport, coverage_note, only, usable

V4 = FamilySupport("inet", True, True)
V6 = FamilySupport("inet6", True, True)
NO_V6 = FamilySupport(
    "inet6", False, False, "the kernel has no IPv6 (Address family not supported by protocol)"
)
NO_IP6T = FamilySupport(
    "inet6", True, False, "ip6tables-legacy filter table unavailable here (iptables who?)"
)
NO_V4 = FamilySupport(
    "inet", False, False, "the kernel has no IPv4 (Address family not supported by protocol)"
)
UNKNOWN_V6 = FamilySupport(
    "inet6", True, None, "cannot read the ip6tables-legacy filter table: permission denied"
)


def test_usable_keeps_what_is_filterable_or_not_known_yet() -> None:
    assert usable((V4, V6)) == ("inet", "inet6")
    assert usable((V4, NO_V6)) == ("inet",)
    assert usable((NO_V4, V6)) == ("inet6",)
    assert usable((V4, UNKNOWN_V6)) == ("inet", "inet6")  # the real change then fails with exit 3
    assert usable((NO_V4, NO_V6)) == ()


def test_no_note_when_both_or_neither_are_covered() -> None:
    assert coverage_note((V4, V6)) is None
    assert coverage_note((V4, UNKNOWN_V6)) is None
    assert coverage_note((NO_V4, NO_V6)) is None  # the firewall refuses that with its own error


def test_a_kernel_without_the_family_is_one_calm_line() -> None:
    note = coverage_note((V4, NO_V6))
    assert note == "only IPv4 is filtered (the kernel has no IPv6 (Address family not supported by protocol))"
    assert coverage_note((NO_V4, V6)) == (
        "only IPv6 is filtered (the kernel has no IPv4 (Address family not supported by protocol))"
    )


def test_a_family_that_flows_unfiltered_is_named_a_hole() -> None:
    note = coverage_note((V4, NO_IP6T))
    assert note is not None and "\n" not in note
    assert note.startswith("only IPv4 is filtered: ip6tables-legacy filter table unavailable")
    assert note.endswith("jailed processes can still reach IPv6 addresses")


def test_only_drops_the_other_family_from_every_direction() -> None:
    both = JailRules(
        name="j",
        out_selectors=(Match("inet", cgroup="/a"), Match("inet6", cgroup="/a")),
        in_selectors=(Match("inet", mark=1, mark_mask=1), Match("inet6", mark=1, mark_mask=1)),
        fwd_selectors=(Match("inet", in_iface="nj-x"), Match("inet6", out_iface="nj-x")),
        out_allow=(Match("inet", dst="127.0.0.0/8"), Match("inet6", dst="::1/128")),
        in_allow=(Match("inet6", "icmpv6", icmp6_type=135),),
        fwd_allow=(Match("inet", dst="10.0.0.0/8", in_iface="nj-x"),),
    )
    v4 = only(both, ("inet",))
    assert v4.name == "j"
    assert v4.out_selectors == (Match("inet", cgroup="/a"),)
    assert v4.in_selectors == (Match("inet", mark=1, mark_mask=1),)
    assert v4.fwd_selectors == (Match("inet", in_iface="nj-x"),)
    assert v4.out_allow == (Match("inet", dst="127.0.0.0/8"),) and v4.in_allow == ()
    assert v4.fwd_allow == both.fwd_allow
    assert only(both, ("inet", "inet6")) == both
    assert only(both, ("inet6",)).fwd_allow == ()


def test_doctor_families_check() -> None:
    assert families_check((V4, V6)).status == "ok"
    assert families_check((V4, V6)).detail == "netjail filters IPv4 and IPv6"
    calm = families_check((V4, NO_V6))
    assert calm.status == "ok" and calm.detail.startswith("netjail filters IPv4 only: the kernel has no IPv6")
    hole = families_check((V4, NO_IP6T))
    assert hole.status == "warn" and hole.detail.endswith("jailed processes can still use IPv6")
    assert families_check((NO_V4, V6)).detail.startswith("netjail filters IPv6 only")
    assert families_check((NO_V4, NO_V6)).status == "fail"
    unknown = families_check((V4, UNKNOWN_V6))
    assert unknown.status == "warn" and unknown.detail.startswith("cannot probe without root")
