"""Jail names: the one rule every caller checks (CLI, dialogs, firewall, netns and group names)
and the one way a default name is made from a program's or user's name (pure, no I/O).

A name becomes part of chain, namespace, group and cgroup names, so it is short and plain:
ASCII letters, digits, '_', '.', '-', a letter or digit first, at most MAX_JAIL_NAME characters
(the room a chain name leaves, firewall/chains.py).
"""

from __future__ import annotations

import re

from netjail.backends.errors import BadInput
from netjail.backends.firewall.chains import MAX_JAIL_NAME

_JAIL_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_JAIL_NAME - 1}}}")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")  # ASCII only: str.isalnum() takes 'é' and 'ø' too


def check_jail_name(name: str) -> str:
    if not isinstance(name, str) or not _JAIL_NAME.fullmatch(name):
        raise BadInput(
            f"bad jail name {name!r}: 1-{MAX_JAIL_NAME} characters of A-Z a-z 0-9 _ . - "
            "(starting with a letter or digit)"
        )
    return name


def derive_jail_name(base: str, suffix: str = "") -> str:
    """A valid name from `base` (a program, process or user name) ending in `suffix` ("-42"):
    other characters become '_', leading punctuation goes, the rest is cut to fit."""
    clean = _NOT_ALLOWED.sub("_", base).lstrip("-._") or "jail"
    return check_jail_name(clean[: MAX_JAIL_NAME - len(suffix)] + suffix)
