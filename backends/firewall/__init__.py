"""Firewall layer: netjail-owned chains behind one interface.

`default_firewall()` is the backend the engine uses; importing this package loads no
python-iptables (that happens on the first call that touches the kernel).
"""

from __future__ import annotations

from netjail.backends.firewall.base import Firewall, JailRules, Match
from netjail.backends.firewall.matches import canonical_rules


def default_firewall() -> Firewall:
    from netjail.backends.firewall.iptc_backend import IptcFirewall

    return IptcFirewall()


__all__ = ["Firewall", "JailRules", "Match", "canonical_rules", "default_firewall"]
