"""External programs by absolute path, found once in root-owned system directories.

Never through the caller's PATH: a `sudo -E netjail ...` (or a root shell whose PATH names a
user's directory first) would otherwise run a user's `ss` or `groupadd` as root.
"""

from __future__ import annotations

import functools
import os
import stat

from netjail.backends.errors import UnsupportedEnvironment
from netjail.backends.system.trusted_paths import path_problem

SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


@functools.cache
def _lookup(name: str) -> tuple[str | None, str]:
    """(absolute path, "") or (None, why not)."""
    if "/" in name or not name:
        return None, f"{name!r} is not a plain program name"
    reasons: list[str] = []
    for directory in SYSTEM_DIRS:
        path = os.path.join(directory, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            continue
        # root only: a tool netjail runs must not be replaceable by whoever netjail runs as
        problem = path_problem(path, {0}) or path_problem(directory, {0})
        if problem:
            reasons.append(problem)
            continue
        # the path itself, not its target: multi-call programs (xtables-legacy-multi) look at argv[0]
        return path, ""
    if reasons:
        return None, f"{name} is not trusted: {'; '.join(reasons)}"
    return None, f"{name} not found in {', '.join(SYSTEM_DIRS)}"


def find(name: str) -> str | None:
    """The absolute path of a trusted `name`, None when there is none."""
    return _lookup(name)[0]


def require(name: str, package: str) -> str:
    """The absolute path of `name`, or UnsupportedEnvironment (exit 4) saying what to install."""
    path, why = _lookup(name)
    if path is None:
        raise UnsupportedEnvironment(f"{why} (install the {package} package)")
    return path
