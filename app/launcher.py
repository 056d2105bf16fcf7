"""Writes the `netjail` command `make setup` installs: `python -I -S` and four lines of path setup.

The console script pip writes starts Python with `site`, which runs every `.pth` file of the
venv: the editable install's finder (it imports pathlib, urllib and ipaddress) and setuptools'
distutils shim. That is ~10-15 ms of a 20-27 ms `python -c pass`, paid by every command. This
launcher skips `site` (`-S`) and puts on `sys.path` only the venv's site-packages, after the
standard library as `site` would, with `netjail` a namespace package over the directory holding
`app`, `widgets` and `backends` (the checkout for an editable install, site-packages/netjail
otherwise), so the code run is the code the finder would load.

The cyclic garbage collector is off from the first line: a command that ends within
milliseconds gives all its memory back at exit anyway, and the collections were ~8 % of
`counters`, `list` and `ps` (imports and a 5,000-socket snapshot allocate many objects, all
alive to the end).
`cli.main` turns it back on for the commands that can run for long (`run`, `--watch`).

`-I` also keeps PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, the user's site-packages and the script's
directory out of `sys.path` before `hardening.harden()` runs (docs/security.md §1).

    python -m netjail.app.launcher BIN_DIR     writes BIN_DIR/netjail (atomically, mode 0755)
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig

TEMPLATE = """\
#!{python} -IS
# Written by `python -m netjail.app.launcher` (make setup): no `site`, no .pth files (see there).
import gc
gc.disable()  # a command ends within milliseconds: no cyclic collections (cli.runs_on: those that don't)
import sys
sys.path.append({site_packages!r})
import _frozen_importlib as _boot
_spec = _boot.ModuleSpec("netjail", None, is_package=True)
_spec.submodule_search_locations = [{root!r}]
sys.modules["netjail"] = _boot.module_from_spec(_spec)
from netjail.app.cli import entry
entry()
"""


def package_root() -> str:
    """The directory `netjail.app`, `netjail.widgets` and `netjail.backends` live in."""
    import netjail.app
    import netjail.backends
    import netjail.widgets

    packages = (netjail.app, netjail.widgets, netjail.backends)
    roots = {os.path.dirname(os.path.dirname(os.path.abspath(m.__file__ or ""))) for m in packages}
    if len(roots) != 1:
        raise SystemExit(f"netjail's packages are not in one directory: {sorted(roots)}")
    return roots.pop()


def script(python: str, site_packages: str, root: str) -> str:
    return TEMPLATE.format(python=python, site_packages=site_packages, root=root)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m netjail.app.launcher BIN_DIR\n")
        return 2
    target = os.path.join(argv[0], "netjail")
    text = script(sys.executable, sysconfig.get_paths()["purelib"], package_root())
    tmp = f"{target}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)  # whatever the umask
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
