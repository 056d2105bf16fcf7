"""The engine is reachable without the TUI: importing every backends module loads no textual."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

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


def test_import_linter_contracts_hold(tmp_path: Path) -> None:
    """import-linter finds packages on disk by name: give it `netjail/<folder>` links (the
    installed names) since the folders themselves are called app/, widgets/, backends/."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "netjail").mkdir()
    for folder in ("app", "widgets", "backends"):
        (tmp_path / "netjail" / folder).symlink_to(root / folder)
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [str(lint), "--config", str(root / "pyproject.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken" in out.stdout, out.stdout
