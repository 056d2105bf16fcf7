"""Each command imports only what it runs (whole-process speed): checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("iptc", "pyroute2", "textual", "psutil")


def loaded_by(*argv: str) -> set[str]:
    """Modules present after `netjail ARGV` ran in a new interpreter (its output discarded)."""
    code = (
        "import contextlib, io, json, os, sys\n"
        "from netjail.app import cli\n"
        "sys.stdout = io.TextIOWrapper(open(os.devnull, 'wb'))\n"
        "with contextlib.suppress(SystemExit):\n"
        f"    cli.main({list(argv)!r})\n"
        "sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line[8:]))


def top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def test_ps_loads_no_firewall_no_netlink_library_no_tui() -> None:
    mods = loaded_by("ps", "--json")
    assert "netjail.backends.inventory" in mods  # it did take a snapshot
    assert not top(mods) & set(HEAVY), sorted(top(mods) & set(HEAVY))
    assert not {m for m in mods if m.startswith(("netjail.backends.firewall", "netjail.backends.launch"))}
    assert "netjail.backends.engine" not in mods and "netjail.backends.reconcile" not in mods


def test_help_loads_no_engine_and_no_data_model() -> None:
    mods = loaded_by("--help")
    # hardening runs first in every command (docs/security.md §1): small, no data model
    allowed = {"netjail.backends.errors", "netjail.backends.hardening", "netjail.backends.trusted_paths"}
    assert not {m for m in mods if m.startswith("netjail.backends.") and m not in allowed}
    assert "orjson" not in mods and "importlib.metadata" not in mods


def test_reading_counters_loads_no_python_iptables() -> None:
    """The counters are one raw table read per family: python-iptables (and libxtables) are for
    writing rules, and the launch code for launching."""
    mods = loaded_by("counters", "--json")
    assert "netjail.backends.firewall.counters" in mods
    assert "iptc" not in top(mods) and "netjail.backends.engine_launch" not in mods
