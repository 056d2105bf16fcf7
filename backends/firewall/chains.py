"""The names of netjail's chains (base.py describes the layout): a leaf module, so what only
reads counters (counters.py) loads neither the firewall interface nor its dataclasses."""

from __future__ import annotations

DISPATCH = {"out": "NETJAIL-OUT", "in": "NETJAIL-IN", "fwd": "NETJAIL-FWD"}
BUILTIN = {"out": "OUTPUT", "in": "INPUT", "fwd": "FORWARD"}
JAIL_CHAIN_PREFIX = {"out": "NJ-O-", "in": "NJ-I-", "fwd": "NJ-F-"}
MAX_JAIL_NAME = 23  # chain names are at most 28 characters: "NJ-O-" + 23


def jail_chain(direction: str, jail: str) -> str:
    return JAIL_CHAIN_PREFIX[direction] + jail
