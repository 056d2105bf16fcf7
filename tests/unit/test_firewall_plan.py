"""Rule-edit planning: the edits turn a chain into the wanted one and never touch rules that stay."""

from __future__ import annotations

from netjail.backends.firewall.base import Match
from netjail.backends.firewall.plan import (
    Append,
    Delete,
    Edit,
    Insert,
    RuleKey,
    edit_builtin,
    edit_dispatch,
    edit_jail_chain,
)

ANY = Match("inet")
DROP: RuleKey = ("DROP", ANY, None)


def ret(port: int) -> RuleKey:
    return ("RETURN", Match("inet", "udp", dport=port), None)


def sel(chain: str, port: int) -> RuleKey:
    return (chain, Match("inet", "tcp", sport=port), None)


Row = tuple[str, RuleKey | None, int]


def apply(chain: list[Row], edits: list[Edit]) -> list[Row]:
    """Apply edits to (target, key, identity) rows; identities show which rules survived."""
    out = list(chain)
    for e in edits:
        if isinstance(e, Delete):
            del out[e.position]
        elif isinstance(e, Insert):
            out.insert(e.position, (e.key[0], e.key, -1))
        elif isinstance(e, Append):
            out.append((e.key[0], e.key, -1))
    return out


def rows(*keys: RuleKey | None) -> list[Row]:
    return [(k[0] if k else "X", k, i) for i, k in enumerate(keys)]


def current(chain: list[Row]) -> list[tuple[str, RuleKey | None]]:
    return [(t, k) for t, k, _ in chain]


def test_new_jail_chain_is_allow_then_drop() -> None:
    edits = edit_jail_chain([], [ret(53), ret(80)], DROP)
    assert edits == [Append(ret(53)), Append(ret(80)), Append(DROP)]


def test_unchanged_jail_chain_needs_no_edit() -> None:
    chain = rows(ret(53), ret(80), DROP)
    assert edit_jail_chain(current(chain), [ret(80), ret(53)], DROP) == []


def test_added_allow_goes_before_the_drop_and_keeps_the_rest() -> None:
    chain = rows(ret(53), DROP)
    after = apply(chain, edit_jail_chain(current(chain), [ret(53), ret(80), ret(443)], DROP))
    assert [k for _, k, _ in after] == [ret(53), ret(80), ret(443), DROP]
    assert [i for *_, i in after] == [0, -1, -1, 1]  # the DROP (and its counters) survived


def test_removed_allow_is_deleted_alone() -> None:
    chain = rows(ret(53), ret(80), DROP)
    edits = edit_jail_chain(current(chain), [ret(80)], DROP)
    assert edits == [Delete(0)]


def test_drifted_chain_is_repaired() -> None:
    chain = rows(DROP, None, ret(53), ret(53), ("ACCEPT", ANY, None))
    after = apply(chain, edit_jail_chain(current(chain), [ret(53), ret(80)], DROP))
    assert [k for _, k, _ in after] == [ret(53), ret(80), DROP]
    assert after[0][2] == 2  # the first good RETURN was kept


def test_dispatch_touches_only_the_jails_in_the_change() -> None:
    a, b = "NJ-O-a", "NJ-O-b"
    chain = rows(sel(a, 1), sel(b, 1), sel(a, 2), sel(b, 2))
    live = {a, b}
    after = apply(chain, edit_dispatch(current(chain), {a: [sel(a, 2), sel(a, 3)]}, live))
    assert [k for _, k, _ in after] == [sel(b, 1), sel(a, 2), sel(b, 2), sel(a, 3)]
    assert [i for *_, i in after] == [1, 2, 3, -1]


def test_dispatch_drops_jumps_to_removed_or_unknown_chains() -> None:
    a, b = "NJ-O-a", "NJ-O-b"
    chain = rows(sel(a, 1), sel(b, 1), ("", None))
    after = apply(chain, edit_dispatch(current(chain), {}, {a}))
    assert [k for _, k, _ in after] == [sel(a, 1)]


def test_dispatch_replaces_undecodable_rules_of_a_synced_jail() -> None:
    a = "NJ-O-a"
    chain = [(a, None, 0), (a, sel(a, 1), 1)]
    after = apply(chain, edit_dispatch(current(chain), {a: [sel(a, 1)]}, {a}))
    assert [(k, i) for _, k, i in after] == [(sel(a, 1), 1)]


def test_builtin_jump_kept_when_first() -> None:
    jump: RuleKey = ("NETJAIL-OUT", ANY, "netjail")
    chain = [("NETJAIL-OUT", jump), ("ACCEPT", None), ("DOCKER", None)]
    assert edit_builtin(chain, "NETJAIL-OUT", jump) == []


def test_builtin_jump_moved_back_to_top_without_touching_others() -> None:
    jump: RuleKey = ("NETJAIL-OUT", ANY, "netjail")
    chain = rows(("ACCEPT", ANY, None), jump, ("LOG", ANY, None), jump)
    chain = [(t if k is None else k[0], k, i) for t, k, i in chain]
    after = apply(chain, edit_builtin(current(chain), "NETJAIL-OUT", jump))
    assert [(k, i) for _, k, i in after] == [
        (jump, -1),
        (("ACCEPT", ANY, None), 0),
        (("LOG", ANY, None), 2),
    ]


def test_builtin_jump_removed() -> None:
    jump: RuleKey = ("NETJAIL-OUT", ANY, "netjail")
    chain = [("ACCEPT", None), ("NETJAIL-OUT", jump)]
    assert edit_builtin(chain, "NETJAIL-OUT", None) == [Delete(1)]
