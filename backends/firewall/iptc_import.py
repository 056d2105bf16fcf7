"""Importing python-iptables without its slow (and cwd-relative) library search.

`import iptc` cost ~5x more than the work a `netjail block` does after it (measured: 470-770 ms
on a loaded 2-vCPU VM against ~115 ms with the pins below; ~120 ms when quiet): it imports
setuptools' distutils for one path, runs `/sbin/ldconfig -N -v` to find the extension directory
and tries each library name through `ctypes.util.find_library` (more `ldconfig -p` / gcc runs)
and relative to the current directory. Pointing it at the system's own directories, by absolute
path, skips the search:

    IPTABLES_LIBDIR                  the directory holding libxtables.so.N (and python-iptables'
                                     own libxtwrapper extension, in site-packages)
    PYTHON_IPTABLES_XTABLES_VERSION  N, so the file name is exact
    XTABLES_LIBDIR                   <that directory>/xtables, where libxtables itself looks
    SETUPTOOLS_USE_DISTUTILS=stdlib  the standard library's distutils for its one path lookup

They are set only for the import (values the caller set are kept) and only when libxtables
is found in a system directory; otherwise python-iptables searches as before.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PINNED = ("IPTABLES_LIBDIR", "PYTHON_IPTABLES_XTABLES_VERSION", "XTABLES_LIBDIR", "SETUPTOOLS_USE_DISTUTILS")


@functools.cache
def names_in(directory: str) -> tuple[str, ...]:
    """A directory's entries, listed once per process. The library directory holds ~1,000
    files, and a glob per library name listed it again for every lookup (nine listings on the
    way to python-iptables: ~10 ms of a `netjail block` on a loaded machine)."""
    try:
        return tuple(os.listdir(directory))
    except OSError:
        return ()


def versioned(directory: Path | str, stem: str) -> list[str]:
    """The names `<stem>.so.<digit>...` in `directory` (what `<stem>.so.[0-9]*` globs), shortest
    first: the soname before the full version."""
    prefix = f"{stem}.so."
    found = (
        n
        for n in names_in(str(directory))
        if n.startswith(prefix) and n[len(prefix) : len(prefix) + 1].isdigit()
    )
    return sorted(found, key=len)


def system_lib_dirs() -> list[Path]:
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/lib/{arch}", f"/lib/{arch}"] if arch else []
    return [Path(d) for d in (*dirs, "/usr/lib64", "/lib64", "/usr/lib", "/lib")]


def pins() -> dict[str, str] | None:
    """The environment for a fast import, or None when libxtables is not where we look."""
    for d in system_lib_dirs():
        found = versioned(d, "libxtables")
        if not found or not (d / "xtables").is_dir():
            continue
        major = found[0].removeprefix("libxtables.so.").split(".")[0]
        wrapper_dirs = [p for p in sys.path if p and Path(p, "iptc").is_dir()]
        return {
            "IPTABLES_LIBDIR": ":".join([str(d), *wrapper_dirs]),
            "PYTHON_IPTABLES_XTABLES_VERSION": major,
            "XTABLES_LIBDIR": str(d / "xtables"),
            "SETUPTOOLS_USE_DISTUTILS": "stdlib",
        }
    return None


@contextlib.contextmanager
def _environment(values: dict[str, str] | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in PINNED}
    for k, v in (values or {}).items():
        os.environ.setdefault(k, v)  # what the caller set stays (XTABLES_LIBDIR for tests)
    # setuptools' shim, installed at interpreter start by a .pth file, answers `import
    # distutils` with setuptools itself (~150 ms); the env var alone is read only at start.
    shim = sys.modules.get("_distutils_hack")
    remove, add = getattr(shim, "remove_shim", None), getattr(shim, "add_shim", None)
    if values is not None and remove is not None:
        remove()
    try:
        yield
    finally:
        if values is not None and remove is not None and add is not None:
            add()
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


@contextlib.contextmanager
def _system_find_library(values: dict[str, str] | None) -> Iterator[None]:
    """ctypes.util.find_library answered from the pinned directory (`lib<name>.so.<N>`), for
    the import only: python-iptables asks it for libc, ip4tc and ip6tc, and each call otherwise
    runs `ldconfig -p`. Names not found there (its own libxtwrapper extension) get None: the real
    search runs gcc and ldconfig (~85 ms), and python-iptables then finds the extension in its
    own site-packages directory. Unpinned, every name goes to the real one."""
    import ctypes.util

    real = ctypes.util.find_library
    libdir = Path(values["IPTABLES_LIBDIR"].split(":")[0]) if values else None

    def find_library(name: str) -> str | None:
        if libdir is not None:
            found = versioned(libdir, f"lib{name}")
            if found:
                return found[0]  # a soname, as find_library returns it
            return None
        return real(name)

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = real


def import_iptc() -> Any:
    if "iptc" in sys.modules:
        return sys.modules["iptc"]
    values = pins()
    with _environment(values), _system_find_library(values), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the stdlib's distutils says so
        import iptc
    return iptc
