"""Which jails have a network namespace, by name alone: what every reconciliation asks
(reconcile.py's adoption), kept apart from netns.py so that asking loads none of the launch
code (its dataclasses and the veth address pool: ~6 ms of each `netjail block`)."""

from __future__ import annotations

import os
from pathlib import Path

from netjail.backends.jails.names import max_jail_name

NETNS_RUN_DIR = Path("/run/netns")
NETNS_PREFIX_ENV = "NETJAIL_NETNS_PREFIX"
DEFAULT_NETNS_PREFIX = "netjail-"


def netns_prefix() -> str:
    return os.environ.get(NETNS_PREFIX_ENV) or DEFAULT_NETNS_PREFIX


def list_netjail_netns() -> list[str]:
    """Jails that have a network namespace (names in /run/netns with netjail's prefix)."""
    prefix = netns_prefix()
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    jails = (n[len(prefix) :] for n in names if n.startswith(prefix))
    longest = max_jail_name()
    return sorted(j for j in jails if 0 < len(j) <= longest)
