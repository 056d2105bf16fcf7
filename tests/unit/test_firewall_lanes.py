"""Lanes (pure): which selectors leave the dispatch chain, and the gates leading to them."""

from __future__ import annotations

from netjail.backends.firewall.base import Match
from netjail.backends.firewall.lanes import ALL_BITS, CLEAR_MARK, LANES, cgroup_roots, lane_for
from netjail.backends.firewall.plan import Append, Delete, Insert, edit_lane

CG, MK, FB = LANES["out"]
IN_CG, IN_MK, IN_FB = LANES["in"]


def test_member_cgroups_and_marks_go_to_lanes_others_stay() -> None:
    assert lane_for("out", Match("inet", cgroup="/netjail/net-1/web/12.34")) is CG
    assert lane_for("out", Match("inet", mark=0x1000000, mark_mask=0xFF000000)) is MK
    assert lane_for("in", Match("inet", mark=0x1000000, mark_mask=0xFF000000)) is IN_MK
    # coming in too: early demux gives INPUT an established socket, and its cgroup
    assert lane_for("in", Match("inet", cgroup="/netjail/net-1/web/12.34")) is IN_CG
    assert lane_for("out", Match("inet", uid_owner=1000)) is None
    assert lane_for("in", Match("inet", "tcp", dport=80)) is None
    assert lane_for("fwd", Match("inet", in_iface="njv1")) is None


def test_fallback_set_rules_sit_behind_one_gate_per_direction() -> None:
    out = Match("inet", match_set="nj4-web-f", set_flags="src,src,dst")
    assert lane_for("out", out) is FB
    assert lane_for("in", Match("inet", match_set="nj4-web-f", set_flags="dst,dst,src")) is IN_FB
    many = [Match("inet", match_set=f"nj4-j{i}-f", set_flags="src,src,dst") for i in range(50)]
    assert FB.gates("inet", many) == [(FB.chain, Match("inet", match_set="nj-gate", set_flags="src"), None)]
    assert IN_FB.gates("inet6", many) == [
        (IN_FB.chain, Match("inet6", match_set="nj-gate", set_flags="dst"), None)
    ]
    assert FB.gates("inet", []) == [] and FB.head("inet", many) == [] and IN_FB.tail("inet") == []


def test_one_cgroup_gate_per_root_whatever_the_members() -> None:
    body = [Match("inet", cgroup=f"/netjail/net-1/j{j}/{p}.1") for j in range(50) for p in range(3)]
    body.append(Match("inet", cgroup="/netjail/net-2/x/9.9"))
    assert cgroup_roots(body) == ["/netjail/net-1", "/netjail/net-2"]
    # a root under another root adds nothing: an ancestor already matches it (xt_cgroup)
    assert cgroup_roots([*body, Match("inet", cgroup="/netjail/a/b/c")]) == [
        "/netjail/a",
        "/netjail/net-1",
        "/netjail/net-2",
    ]
    assert cgroup_roots([*body, Match("inet", cgroup="/netjail")]) == ["/netjail"]
    assert cgroup_roots([Match("inet", cgroup="/a/b/c/d"), Match("inet", cgroup="/a/x")]) == ["/a/b", "/a/x"]
    assert CG.gates("inet", []) == []


def test_mark_lane_head_covers_every_jails_mask_and_incoming_clears_the_mark() -> None:
    body = [Match("inet", mark=0x1000000, mark_mask=0xFF000000), Match("inet", mark=0x10, mark_mask=0xF0)]
    assert MK.head("inet", body) == [("RETURN", Match("inet", mark=0, mark_mask=0xFF0000F0), None)]
    assert MK.gates("inet", body) == [(MK.chain, Match("inet"), None)]
    assert MK.tail("inet") == []
    # coming in, only unmarked packets are looked up, and the mark goes back to 0 after
    # coming in: packets with no bits but netjail's enter (a jailed sender's mark over lo) and
    # take their socket's mark: one without a mark leaves at the first rule; the others lose
    # netjail's bits and are looked up again; the mark goes back to 0 after
    not_ours = ALL_BITS & ~0xFF0000F0
    lookup = ("RETURN", Match("inet6", mark=0, mark_mask=ALL_BITS, socket_mark=True), None)
    assert IN_MK.gates("inet6", body) == [(IN_MK.chain, Match("inet6", mark=0, mark_mask=not_ours), None)]
    assert IN_MK.head("inet6", body) == [
        lookup,
        (CLEAR_MARK, Match("inet6", mark=0, mark_mask=not_ours), None),
        lookup,
    ]
    assert IN_MK.tail("inet6") == [(CLEAR_MARK, Match("inet6"), None)]


H = ("RETURN", Match("inet", mark=0, mark_mask=ALL_BITS), None)
T = (CLEAR_MARK, Match("inet"), None)


def j(name: str, mark: int) -> tuple[str, Match, None]:
    return (f"NJ-I-{name}", Match("inet", mark=mark, mark_mask=0xFF000000), None)


def test_lane_edits_keep_head_and_tail_in_place() -> None:
    a, b = j("a", 0x1000000), j("b", 0x2000000)
    current = [(H[0], H), (a[0], a), (T[0], T)]
    edits = edit_lane(current, [H], {b[0]: [b]}, {a[0], b[0]}, [T])
    assert edits == [Insert(2, b)]  # before the tail
    current = [(H[0], H), (a[0], a), (b[0], b), (T[0], T)]
    assert edit_lane(current, [H], {a[0]: []}, {b[0]}, [T]) == [Delete(1)]
    assert edit_lane(current, [H], {}, {a[0], b[0]}, [T]) == []


def test_lane_with_another_head_is_rebuilt_keeping_other_jails() -> None:
    a, b = j("a", 0x1000000), j("b", 0x2000000)
    old_head = ("RETURN", Match("inet", mark=0, mark_mask=0xFF000000), None)
    current = [(old_head[0], old_head), (a[0], a), (T[0], T)]
    edits = edit_lane(current, [H], {b[0]: [b]}, {a[0], b[0]}, [T])
    assert edits == [Delete(2), Delete(1), Delete(0), Append(H), Append(a), Append(b), Append(T)]
