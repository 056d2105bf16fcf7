"""Firewall layer: netjail-owned chains behind one interface (base.py), backends chosen in
registry.py.

`default_firewall()` is the backend registry.selected() picks (docs/backends.md);
importing this package loads no python-iptables (that happens on the first call that touches
the kernel), nor the interface below until it is asked for: `netjail counters` imports the
package for registry.py and the backend's counter reader alone.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from netjail.backends.firewall.base import Firewall, JailRules, Match
    from netjail.backends.firewall.matches import canonical_rules

_LAZY = {"Firewall": "base", "JailRules": "base", "Match": "base", "canonical_rules": "matches"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


def default_firewall() -> Firewall:
    from netjail.backends.firewall.registry import select_backend

    return select_backend()


__all__ = ["Firewall", "JailRules", "Match", "canonical_rules", "default_firewall"]
