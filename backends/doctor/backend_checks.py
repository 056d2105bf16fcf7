"""doctor's lines about the firewall backends: which one is in use and why, whether each one
could work here (`backends`, run for every backend), and the nftables backend's own check
(`nftables`: the nft tool, libnftables, nf_tables in the kernel, netjail's table and the
tables of others). Pure functions over captured inputs, like checks.py; `read_*` gather them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from netjail.backends.model import Check

OK, WARN, FAIL = "ok", "warn", "fail"
OWN_TABLE = ("inet", "netjail")  # the nftables backend's one table (docs/backends.md)
LIBNFTABLES = "libnftables.so.1"


def backends_check(in_use: str | None, why: str, available: Mapping[str, tuple[bool | None, str]]) -> Check:
    """`in_use`: the backend commands use here (None: refused, `why` says so); `available`:
    backend -> (could work here: True, False, None for unknown; why)."""
    word = {True: "available", False: "unavailable", None: "unknown"}
    each = "; ".join(f"{name}: {word[ok]} ({reason})" for name, (ok, reason) in sorted(available.items()))
    if in_use is None:
        return Check("backends", FAIL, f"{why}; {each}")
    usable = available.get(in_use, (None, ""))[0]
    status = FAIL if usable is False else OK
    return Check("backends", status, f"{in_use} in use ({why}); {each}")


def iptables_available(names_file: bool, python_iptables: str | None, module: bool) -> tuple[bool, str]:
    """`names_file`: /proc/net/ip_tables_names exists (xtables-legacy in the kernel);
    `python_iptables`: why it cannot be imported (None: it can)."""
    if not module:
        return False, "this netjail has no iptables backend module"
    if not names_file:
        return False, "no xtables-legacy in the kernel (no /proc/net/ip_tables_names)"
    if python_iptables is not None:
        return False, f"python-iptables: {python_iptables}"
    return True, "xtables-legacy in the kernel, python-iptables loads"


def nftables_available(
    kernel: tuple[bool | None, str], libnftables: str | None, module: bool
) -> tuple[bool | None, str]:
    """`kernel`: nf_tables_probe.probe(); `libnftables`: why it cannot be loaded (None: it can)."""
    if not module:
        return False, "this netjail has no nftables backend module"
    found, why = kernel
    if found is not True:
        return found, why
    if libnftables is not None:
        return False, f"{LIBNFTABLES}: {libnftables} (apt install libnftables1 python3-nftables)"
    return True, f"{why}, {LIBNFTABLES} loads"


def nft_tables(ruleset_json: str) -> list[tuple[str, str]]:
    """(family, name) of every table in `nft -j list tables` / `list ruleset` output."""
    return [
        (item["table"]["family"], item["table"]["name"])
        for item in json.loads(ruleset_json).get("nftables", [])
        if "table" in item
    ]


def nftables_check(
    nft_tool: str | None,
    libnftables: str | None,
    kernel: tuple[bool | None, str],
    tables: Sequence[tuple[str, str]] | None,
    tables_error: str = "",
) -> Check:
    """`nft_tool`: its path (None: not installed); `libnftables`: why it does not load (None:
    it does); `tables`: every nf_tables table, None when unreadable (`tables_error`)."""
    found, why = kernel
    if found is False:
        return Check("nftables", FAIL, f"the kernel has no nf_tables: {why}")
    if libnftables is not None:
        return Check(
            "nftables", FAIL, f"{LIBNFTABLES} does not load ({libnftables}): apt install libnftables1"
        )
    parts = [f"{LIBNFTABLES} loads", why]
    if tables is None:
        parts.append(f"tables not read ({tables_error})")
    else:
        own = " ".join(OWN_TABLE)
        parts.append(f"table {own} {'present' if tuple(OWN_TABLE) in tables else 'absent'}")
        foreign = sorted(f"{family} {name}" for family, name in tables if (family, name) != OWN_TABLE)
        parts.append(f"other tables: {', '.join(foreign)}" if foreign else "no other tables")
    if nft_tool is None:
        parts.append(
            "the nft tool is missing (apt install nftables): netjail's table cannot be listed by hand"
        )
        return Check("nftables", WARN, "; ".join(parts))
    return Check("nftables", OK, f"nft at {nft_tool}; " + "; ".join(parts))


def load_error(library: str) -> str | None:
    """Why `library` cannot be loaded by the dynamic linker (None: it can)."""
    import ctypes

    try:
        ctypes.CDLL(library)
    except OSError as exc:
        return str(exc)
    return None


def import_error(module: str) -> str | None:
    import importlib

    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken library must fail the line, not doctor
        return f"{type(exc).__name__}: {exc}"
    return None


def legacy_in_kernel() -> bool:
    return os.path.exists("/proc/net/ip_tables_names")
