"""The engine is reachable without the TUI: importing every backends module loads no textual."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import netjail.backends


def test_backends_never_import_textual() -> None:
    modules = [m.name for m in pkgutil.walk_packages(netjail.backends.__path__, "netjail.backends.")]
    assert "netjail.backends.model" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'"
        " or m.startswith(('netjail.app', 'netjail.widgets')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"backends pulled in: {out.stdout.strip()}"


def test_import_linter_contracts_hold() -> None:
    out = subprocess.run([sys.executable, "-m", "importlinter.cli"], capture_output=True, text=True)
    if out.returncode != 0 and "No module named" in out.stderr:
        out = subprocess.run(["lint-imports"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
