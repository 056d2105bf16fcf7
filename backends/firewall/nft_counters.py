"""Jail counters of the nftables backend: netjail's named counters, read in one listing.

Each jail has four counter objects in `table inet netjail` (nft_plan.py): nj-<jail>-drop4,
-drop6, -allow4, -allow6, shared by its out, in and forward chains. `list counters table inet
netjail` returns them all in one netlink dump, whatever the number of rules. `netjail counters`
imports this module alone: no firewall interface, no planner (tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from netjail.backends.model import Counters, JailCounters

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from netjail.backends.firewall.nft_binding import Nft

_SLOT = {"drop4": 0, "allow4": 2, "drop6": 4, "allow6": 6}


def counters_by_jail(counters: Mapping[str, tuple[int, int]]) -> dict[str, list[int]]:
    """jail -> [dropped4 packets, bytes, allowed4 packets, bytes, dropped6 ..., allowed6 ...]:
    the suffix after the last '-' says which (a jail name may hold '-' itself)."""
    out: dict[str, list[int]] = {}
    for name, (packets, nbytes) in counters.items():
        if not name.startswith("nj-"):
            continue
        jail, _, suffix = name[3:].rpartition("-")
        if suffix not in _SLOT or not jail:
            continue
        acc = out.setdefault(jail, [0] * 8)
        acc[_SLOT[suffix]] += packets
        acc[_SLOT[suffix] + 1] += nbytes
    return out


def read_counters(nft: Nft | None = None) -> Mapping[str, JailCounters]:
    from netjail.backends.firewall.nft_binding import TABLE, Nft

    ctx = nft if nft is not None else Nft()
    found: dict[str, tuple[int, int]] = {}
    for item in ctx.list(f"counters table {TABLE}") or ():
        c = item.get("counter")
        if c is not None:
            found[c["name"]] = (int(c.get("packets", 0)), int(c.get("bytes", 0)))
    out: dict[str, JailCounters] = {}
    for jail, t in sorted(counters_by_jail(found).items()):
        c4, c6 = Counters(t[0], t[1], t[2], t[3]), Counters(t[4], t[5], t[6], t[7])
        out[jail] = JailCounters(jail=jail, total=c4 + c6, inet=c4, inet6=c6)
    return out
