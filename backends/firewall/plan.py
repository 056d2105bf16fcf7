"""The smallest list of rule edits turning what a chain holds into what netjail wants (pure).

Edits are applied in order to one libiptc handle, positions 0-based and valid at the moment the
edit runs. Rules that stay are never deleted and re-added, so their counters survive a re-sync.
A rule is identified by its key (target, match, comment); a rule that could not be decoded has
no key and is always replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from netjail.backends.firewall.base import Match

RuleKey = tuple[str, Match, str | None]  # (target, match, comment)
Current = Sequence[tuple[str, RuleKey | None]]  # (target, key or None when undecodable)


@dataclass(frozen=True, slots=True)
class Delete:
    position: int


@dataclass(frozen=True, slots=True)
class Insert:
    position: int
    key: RuleKey


@dataclass(frozen=True, slots=True)
class Append:
    key: RuleKey


Edit = Delete | Insert | Append


def _deletes(keep: Sequence[bool]) -> list[Edit]:
    return [Delete(i) for i in reversed(range(len(keep))) if not keep[i]]


def edit_jail_chain(
    current: Current, body: Sequence[RuleKey], tail: RuleKey, log: RuleKey | None = None
) -> list[Edit]:
    """A jail chain: `body` (allow RETURNs, any order), then `log` (the copy to the attempts
    log, when there is one) and `tail` (the DROP) as its last rules, in that order."""
    ends = [log, tail] if log is not None else [tail]
    n = len(ends)
    keys = [key for _, key in current]
    has_ends = len(keys) >= n and keys[len(keys) - n :] == ends
    limit = len(keys) - n if has_ends else len(keys)
    wanted = set(body)
    seen: set[RuleKey] = set()
    keep = [False] * len(current)
    for i in range(limit):
        key = keys[i]
        if key is None or key in seen:
            continue
        if key in wanted:
            keep[i] = True
            seen.add(key)
    if has_ends:
        keep[limit:] = [True] * n
    edits = _deletes(keep)
    kept_body = sum(keep[:limit])
    missing = [k for k in dict.fromkeys(body) if k not in seen]
    if has_ends:
        edits += [Insert(kept_body + j, k) for j, k in enumerate(missing)]
    else:
        edits += [Append(k) for k in missing] + [Append(k) for k in ends]
    return edits


def edit_dispatch(current: Current, wanted: Mapping[str, Sequence[RuleKey]], live: Set[str]) -> list[Edit]:
    """A dispatch chain. `wanted` maps each jail chain this change touches to its selector jumps;
    jumps to other chains in `live` (jails left alone) stay, jumps to anything else go."""
    wanted_keys = {k for keys in wanted.values() for k in keys}
    seen: set[RuleKey] = set()
    keep = [False] * len(current)
    for i, (target, key) in enumerate(current):
        if target not in live:
            continue
        if target not in wanted:
            keep[i] = True
        elif key is not None and key in wanted_keys and key not in seen:
            keep[i] = True
            seen.add(key)
    missing = [k for keys in wanted.values() for k in dict.fromkeys(keys) if k not in seen]
    return _deletes(keep) + [Append(k) for k in missing]


def edit_builtin(current: Current, dispatch: str, jump: RuleKey | None) -> list[Edit]:
    """A built-in chain: exactly one `jump` to `dispatch`, as its first rule (or none when `jump`
    is None). Every other rule is someone else's and is never touched."""
    ours = [i for i, (target, _) in enumerate(current) if target == dispatch]
    if jump is not None and ours == [0] and current[0][1] == jump:
        return []
    edits: list[Edit] = [Delete(i) for i in reversed(ours)]
    if jump is not None:
        edits.append(Insert(0, jump))
    return edits


def edit_lane(
    current: Current,
    head: Sequence[RuleKey],
    wanted: Mapping[str, Sequence[RuleKey]],
    live: Set[str],
    tail: Sequence[RuleKey],
) -> list[Edit]:
    """A lane chain (lanes.py): fixed `head` rules, the selector jumps as in a dispatch chain,
    fixed `tail` rules. A lane whose head or tail changed (a jail with another mark mask came
    or went) is rebuilt whole: the lane holds a few rules per jail and no counters of value."""
    n_head, n_tail = len(head), len(tail)
    keys = [key for _, key in current]
    if (
        len(current) >= n_head + n_tail
        and keys[:n_head] == list(head)
        and keys[len(keys) - n_tail :] == list(tail)
    ):
        body = current[n_head : len(current) - n_tail]
        edits: list[Edit] = []
        kept = len(body)
        for e in edit_dispatch(body, wanted, live):
            if isinstance(e, Delete):
                edits.append(Delete(e.position + n_head))
                kept -= 1
            elif isinstance(e, Append):
                edits.append(Insert(n_head + kept, e.key))
                kept += 1
        return edits
    body_keys = [
        key for target, key in current if key is not None and target in live and target not in wanted
    ]
    body_keys = [k for k in dict.fromkeys(body_keys) if k not in head and k not in tail]
    wanted_keys = [k for keys_ in wanted.values() for k in dict.fromkeys(keys_)]
    rebuilt: list[Edit] = [Delete(i) for i in reversed(range(len(current)))]
    return rebuilt + [Append(k) for k in (*head, *body_keys, *wanted_keys, *tail)]
