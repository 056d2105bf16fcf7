"""What every netjail entry point (netjail, netjail-tui, the watcher) does before anything else:
root must not load code or libraries from places a user controls.

- Remember the caller's working directory and environment (`caller()`): a command given as
  `./script` or a relative path is resolved against them, not against "/".
- Replace the environment with a sanitized one (`sanitized_environ`): a fixed system PATH, the
  terminal and locale settings, sudo's SUDO_USER/SUDO_UID/SUDO_GID and netjail's own NETJAIL_*
  settings; nothing else (no PYTHON*, LD_*, TMPDIR, IPTABLES_LIBDIR ...). Children (tools, the
  watcher) inherit only that.
- chdir("/"): python-iptables resolves the library names it loads (`xtables`, `ip4tc` ...)
  relative to the working directory, and so would anything else that opens a relative path.

Helpers are Python processes started with `helper_command()`: `python -I` (no working directory
or PYTHON* variables on sys.path), from "/", with the sanitized environment.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from netjail.backends.errors import EXIT_BAD_INPUT
from netjail.backends.system.trusted_paths import path_problem

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_KEEP = frozenset(
    {
        "TERM",
        "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION",
        "COLORTERM",
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "FORCE_COLOR",
        "LANG",
        "LANGUAGE",
        "TZ",
        "SUDO_USER",  # launched commands run as the invoking user by default
        "SUDO_UID",
        "SUDO_GID",
        "XTABLES_LOCKFILE",  # the lock iptables takes: shared with the operator's own iptables
    }
)
_KEEP_PREFIXES = ("LC_", "NETJAIL_")
STATE_DIR_ENV = "NETJAIL_STATE_DIR"


@dataclass(frozen=True, slots=True)
class Caller:
    """Where netjail was started from, before hardening: for resolving what the user typed."""

    cwd: str | None  # None when it was deleted or unreadable
    environ: Mapping[str, str]


_caller: Caller | None = None


def sanitized_environ(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    env["PATH"] = SAFE_PATH
    try:
        me = pwd.getpwuid(os.geteuid())
        env.update(HOME=me.pw_dir, USER=me.pw_name, LOGNAME=me.pw_name)
    except KeyError:
        pass
    return env


_NAME_SETTINGS = ("NETJAIL_NETNS_PREFIX", "NETJAIL_CGROUP_PARENT")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def settings_problem(env: Mapping[str, str]) -> str | None:
    """Why a setting netjail reads from its environment cannot be used (None when all can).

    Root runs with them (`sudo -E`, env_keep): a prefix with a slash put namespace mounts and
    jail cgroups under a user's directory, a huge watch interval switched the watcher off, and
    a lock file path is where root creates a file.
    """
    for key in _NAME_SETTINGS:
        value = env.get(key)
        if value is not None and not (_PLAIN_NAME.fullmatch(value) and len(value) <= 64):
            return f"{key}={value!r}: a plain name of letters, digits, '_', '.' and '-' (no '/')"
    interval = env.get("NETJAIL_WATCH_INTERVAL")
    if interval is not None:
        try:
            ok = 0.05 <= float(interval) <= 3600
        except ValueError:
            ok = False
        if not ok:
            return f"NETJAIL_WATCH_INTERVAL={interval!r}: seconds between 0.05 and 3600"
    lock = env.get("XTABLES_LOCKFILE")
    if lock is not None:
        if not os.path.isabs(lock):
            return f"XTABLES_LOCKFILE={lock!r}: an absolute path"
        if problem := path_problem(os.path.dirname(lock)):
            return f"XTABLES_LOCKFILE={lock!r}: {problem}"
    return None


def open_std_streams() -> None:
    """Give fds 0-2 that the caller left closed (`netjail block PID >&-`) /dev/null, and Python
    streams for them. Closed, the first file netjail opened took the number: python-iptables
    swaps fd 1 to read a match's text (`os.dup(1)`: EBADF, so every block failed with 'cannot
    encode rule'), a launched command inherited whatever file held it, and sys.stdout was None
    (every command ended in a traceback, exit 1, its work done)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, or below
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:
            stream = open(fd, mode, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


def harden() -> Caller:
    """Run first by every entry point (idempotent); returns the caller's cwd and environment."""
    global _caller
    open_std_streams()
    if _caller is None:
        try:
            cwd: str | None = os.getcwd()
        except OSError:
            cwd = None
        _caller = Caller(cwd, MappingProxyType(dict(os.environ)))
    env = sanitized_environ(os.environ)
    if problem := settings_problem(env):
        sys.stderr.write(f"netjail: refusing {problem}\n")
        raise SystemExit(EXIT_BAD_INPUT)
    state = env.get(STATE_DIR_ENV)
    if state and not os.path.isabs(state) and _caller.cwd:
        env[STATE_DIR_ENV] = os.path.join(_caller.cwd, state)  # read later, after the chdir
    os.environ.clear()
    os.environ.update(env)
    os.chdir("/")
    return _caller


def caller() -> Caller:
    """The caller's cwd and environment: as captured by `harden()`, else (the engine used as a
    library, e.g. by tests) the current ones."""
    if _caller is not None:
        return _caller
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    return Caller(cwd, MappingProxyType(dict(os.environ)))


def helper_command(module: str, *args: str) -> list[str]:
    """argv that runs one of netjail's own modules as a helper process."""
    return [sys.executable, "-I", "-m", module, *args]


def helper_environ() -> dict[str, str]:
    return sanitized_environ(os.environ)
