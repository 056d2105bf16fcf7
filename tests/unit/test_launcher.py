"""The `netjail` command make setup installs (app/launcher.py): no `site`, isolated, and the same
code as `python -m netjail.app.cli` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import netjail.app
from netjail.app import launcher

PROBE = (
    "import json, netjail.app.cli\n"
    "print(json.dumps({'no_site': sys.flags.no_site, 'isolated': sys.flags.isolated, 'gc': gc.isenabled(),\n"
    "    'cli': netjail.app.cli.__file__, 'path': sys.path, 'modules': sorted(sys.modules)}))\n"
)


def written_launcher(tmp_path: Path) -> Path:
    assert launcher.main([str(tmp_path)]) == 0
    return tmp_path / "netjail"


def probe(tmp_path: Path, env: dict[str, str]) -> dict[str, object]:
    """What the launcher's interpreter looks like just before it would call `entry()`."""
    text = written_launcher(tmp_path).read_text()
    assert text.endswith("from netjail.app.cli import entry\nentry()\n")
    script = tmp_path / "probe"
    script.write_text(text.replace("from netjail.app.cli import entry\nentry()\n", PROBE))
    script.chmod(0o755)
    out = subprocess.run([str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    return json.loads(out.stdout)


def test_the_launcher_runs_without_site_and_isolated_from_python_variables(tmp_path: Path) -> None:
    # what a user could leave for root: a package shadowing netjail and startup hooks
    evil = tmp_path / "evil"
    (evil / "netjail" / "app").mkdir(parents=True)
    marker = tmp_path / "marker"
    hook = f"open({str(marker)!r}, 'w').write('ran')\n"
    (evil / "netjail" / "app" / "__init__.py").write_text(hook)
    (evil / "netjail" / "app" / "cli.py").write_text(hook)
    (evil / "sitecustomize.py").write_text(hook)
    (evil / "startup.py").write_text(hook)
    env = {**os.environ, "PYTHONPATH": str(evil), "PYTHONSTARTUP": str(evil / "startup.py")}

    seen = probe(tmp_path, env)
    assert seen["no_site"] == 1 and seen["isolated"] == 1
    assert seen["gc"] is False  # back on only for the commands that run on (test_cli_parser)
    assert not marker.exists()
    assert str(evil) not in seen["path"] and str(tmp_path) not in seen["path"]
    # the code an editable install's finder (or a regular install) would load
    assert seen["cli"] == str(Path(netjail.app.__file__).with_name("cli.py"))
    assert sysconfig.get_paths()["purelib"] in seen["path"]
    modules = set(seen["modules"])  # type: ignore[arg-type]
    assert "site" not in modules and "_distutils_hack" not in modules
    assert not {m for m in modules if m.startswith("__editable__")}


def test_the_launcher_runs_the_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(written_launcher(tmp_path)), "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("netjail ")
    bad = subprocess.run([str(tmp_path / "netjail"), "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1  # the CLI's one line, no traceback


def test_make_setup_installed_the_launcher() -> None:
    """The `netjail` next to the venv's python is the launcher (Makefile: $(STAMP))."""
    installed = Path(sys.executable).with_name("netjail").read_text()
    assert installed.splitlines()[0].endswith(" -IS")
    assert installed == launcher.script(
        installed.splitlines()[0][2:-4], sysconfig.get_paths()["purelib"], launcher.package_root()
    )
