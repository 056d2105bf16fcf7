"""Jail names: the one rule every caller checks (CLI, dialogs, firewall, netns and group names)
and the one way a default name is made from a program's or user's name (pure, no I/O).

A name becomes part of chain, namespace, group and cgroup names, so it is short and plain:
ASCII letters, digits, '_', '.', '-', a letter or digit first, and no longer than the firewall
backend in use can hold (its `Limits.max_jail_name`, firewall/registry.py: 23 for iptables, the
room a chain name leaves).
"""

from __future__ import annotations

import re

from netjail.backends.errors import BadInput
from netjail.backends.firewall import registry

_JAIL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")  # ASCII only: str.isalnum() takes 'é' and 'ø' too


def max_jail_name() -> int:
    """The longest jail name the firewall backend in use can hold."""
    return registry.limits().max_jail_name


def check_jail_name(name: str, longest: int | None = None) -> str:
    """`name`, when it is a valid jail name of at most `longest` characters (None: what the
    backend in use can hold); BadInput otherwise."""
    longest = max_jail_name() if longest is None else longest
    if not isinstance(name, str) or len(name) > longest or not _JAIL_NAME.fullmatch(name):
        raise BadInput(
            f"bad jail name {name!r}: 1-{longest} characters of A-Z a-z 0-9 _ . - "
            "(starting with a letter or digit)"
        )
    return name


def derive_jail_name(base: str, suffix: str = "", longest: int | None = None) -> str:
    """A valid name from `base` (a program, process or user name) ending in `suffix` ("-42"):
    other characters become '_', leading punctuation goes, the rest is cut to fit."""
    longest = max_jail_name() if longest is None else longest
    clean = _NOT_ALLOWED.sub("_", base).lstrip("-._") or "jail"
    return check_jail_name(clean[: longest - len(suffix)] + suffix, longest)
