"""A thin, typed handle on libiptc (libip4tc / libip6tc) as loaded by python-iptables.

python-iptables' `Table` is a process-wide singleton whose autocommit setting anyone can flip;
netjail keeps its own handles instead and calls the library functions python-iptables already
declared, reading errno right after each call so failures become netjail errors:

    EPERM / EACCES                      -> InsufficientPrivilege
    table, module or family missing     -> UnsupportedEnvironment (one-line reason)
    EAGAIN on commit                    -> CommitConflict (another writer committed in between)
    anything else                       -> OperationFailed

Nothing reaches the kernel before `commit()`: every edit goes into libiptc's in-memory copy, and
`close()` without commit throws it away.
"""

from __future__ import annotations

import ctypes as ct
import errno
import functools
import os
import re
import subprocess
import sysconfig
from collections.abc import Iterator
from typing import Any

from netjail.backends.errors import (
    InsufficientPrivilege,
    NetjailError,
    OperationFailed,
    UnsupportedEnvironment,
)
from netjail.backends.system.trusted_paths import path_problem

_PRIVILEGE = {errno.EPERM, errno.EACCES}
_MISSING = {errno.ENOENT, errno.ENOPROTOOPT, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ENOSYS}
_TOOL = {"inet": "iptables-legacy", "inet6": "ip6tables-legacy"}


class CommitConflict(OperationFailed):
    """libiptc's commit found the table changed since it was read (EAGAIN): refresh and retry."""


CAP_NET_ADMIN = 12


def has_net_admin(status: str | None = None) -> bool:
    """Whether this process holds CAP_NET_ADMIN (from /proc/self/status, or the text given)."""
    if status is None:
        with open("/proc/self/status") as f:
            status = f.read()
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return os.geteuid() == 0


# What python-iptables and libxtables read from the environment to find what they load.
_LIBRARY_ENV = ("IPTABLES_LIBDIR", "XTABLES_LIBDIR", "IPTABLES_LIB_DIR", "PYTHON_IPTABLES_XTABLES_VERSION")
_LDCONFIG = "/sbin/ldconfig"


def _library_dirs() -> Iterator[str]:
    """Where the system's shared libraries live: the multiarch directories first, then (only if
    needed: it costs a process) what the root-written ld.so cache names for libxtables, asked
    of `/sbin/ldconfig -p` by absolute path."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    seen: set[str] = set()
    for d in (f"/usr/lib/{arch}", f"/lib/{arch}", "/usr/lib64", "/lib64", "/usr/lib", "/lib"):
        if (real := os.path.realpath(d)) not in seen:
            seen.add(real)
            yield real
    try:
        out = subprocess.run(
            [_LDCONFIG, "-p"], capture_output=True, text=True, timeout=10, env={"LC_ALL": "C"}, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    for path in re.findall(r"=> (/\S+/libxtables\.so\.\d+)$", out, re.M):
        if (real := os.path.realpath(os.path.dirname(path))) not in seen:
            seen.add(real)
            yield real


def _trusted_libraries(libdir: str) -> dict[str, str] | None:
    """The pinned environment for one directory, None unless it holds root-owned libxtables.so.N,
    libip4tc.so.N and an xtables/ extension directory."""
    from netjail.backends.firewall.iptc_import import names_in  # one listing for every lookup

    names = names_in(libdir)
    versions = sorted(
        (int(m.group(1)), os.path.join(libdir, name))
        for name in names
        if (m := re.fullmatch(r"libxtables\.so\.(\d+)", name))
    )
    iptc = [os.path.join(libdir, n) for n in names if n.startswith("libip4tc.so.")]
    extensions = os.path.join(libdir, "xtables")
    if not versions or not iptc or not os.path.isdir(extensions):
        return None
    major, library = versions[-1]
    if any(path_problem(p, {0}) for p in (library, iptc[0], extensions)):
        return None
    return {
        "IPTABLES_LIBDIR": libdir,
        "XTABLES_LIBDIR": extensions,
        "PYTHON_IPTABLES_XTABLES_VERSION": str(major),
    }


def _trusted_extensions(directory: str) -> bool:
    """A caller's extension directory is kept only when it and everything in it is root's."""
    try:
        entries = [os.path.join(directory, e) for e in os.listdir(directory)]
    except OSError:
        return False
    return os.path.isabs(directory) and not any(path_problem(p, {0}) for p in (directory, *entries))


@functools.cache
def pin_library_env() -> dict[str, str]:
    """Point python-iptables at the system's own libraries, never at what the environment says.

    python-iptables honours IPTABLES_LIBDIR, XTABLES_LIBDIR and PYTHON_IPTABLES_XTABLES_VERSION
    (and libxtables IPTABLES_LIB_DIR): an operator running `sudo -E` with a user's values would
    load that user's library as root. They are replaced by the first directory holding
    root-owned libraries (nothing above them writable by others); a given XTABLES_LIBDIR stays
    only if it passes the same check, entries included. Returns what was set.
    python-iptables also resolves bare library names against the working directory: the entry
    points run from "/" (see hardening)."""
    given = os.environ.get("XTABLES_LIBDIR", "")
    for name in _LIBRARY_ENV:
        os.environ.pop(name, None)
    for libdir in _library_dirs():
        if pinned := _trusted_libraries(libdir):
            if given and _trusted_extensions(given):
                pinned["XTABLES_LIBDIR"] = given  # root's own choice: e.g. a reduced extension set
            os.environ.update(pinned)
            return pinned
    return {}  # nothing trusted found: python-iptables' own search fails or finds the system's


def load_iptc() -> Any:
    """python-iptables, imported on first use (its import runs modprobe and loads libxtables)."""
    pin_library_env()  # first: the caller's library variables are replaced by trusted ones
    from netjail.backends.firewall.iptc_import import import_iptc

    try:
        iptc = import_iptc()
    except Exception as exc:  # XTablesError, OSError: missing libip4tc / libxtables
        if not has_net_admin():  # unprivileged, its import can fail on unreadable paths first
            raise InsufficientPrivilege("changing firewall rules needs root (CAP_NET_ADMIN)") from None
        raise UnsupportedEnvironment(f"python-iptables cannot load libiptc: {exc}") from None
    return iptc


def _library(family: str) -> tuple[Any, Any]:
    """(libiptc function table, errno location) for one family."""
    load_iptc()
    try:
        from iptc import ip4tc

        if family == "inet6":
            from iptc import ip6tc

            return ip6tc.ip6tc, ip4tc._get_errno_loc
        return ip4tc.iptc, ip4tc._get_errno_loc
    except Exception as exc:
        lib = "libip6tc" if family == "inet6" else "libip4tc"
        raise UnsupportedEnvironment(f"python-iptables cannot load {lib}: {exc}") from None


def translate(family: str, action: str, err: int, detail: str = "", table: str = "filter") -> NetjailError:
    what = f"{_TOOL[family]} {table} table"
    text = detail or os.strerror(err)
    if err in _PRIVILEGE:
        return InsufficientPrivilege(f"{action} the {what}: permission denied (needs root / CAP_NET_ADMIN)")
    return OperationFailed(f"{action} the {what}: {text}")


class Table:
    """One libiptc handle on one table ("filter" unless named) of one family. Use as a context
    manager."""

    name = "filter"
    _rules_cache: dict[str, list[tuple[bytes, str]]] | None = None  # chain -> rules, until edited

    def __init__(self, family: str, name: str = "filter") -> None:
        self.family = family
        self.name = name
        self.dirty = False
        self._lib, self._errno_loc = _library(family)
        self._errno_loc()[0] = 0
        handle = self._lib.iptc_init(name.encode())
        if not handle:
            err = self._errno()
            if err in _PRIVILEGE:
                raise translate(family, "cannot read", err, table=name)
            if err in _MISSING:
                raise UnsupportedEnvironment(
                    f"{_TOOL[family]} {name} table unavailable here ({self._strerror(err)})"
                )
            raise translate(family, "cannot read", err, self._strerror(err), table=name)
        self._handle = handle

    @property
    def _rules(self) -> dict[str, list[tuple[bytes, str]]]:
        if self._rules_cache is None:
            self._rules_cache = {}
        return self._rules_cache

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle:
            self._lib.iptc_free(self._handle)
            self._handle = None

    def _errno(self) -> int:
        return int(self._errno_loc()[0])

    def _strerror(self, err: int) -> str:
        text = self._lib.iptc_strerror(err)
        return text.decode("utf-8", "replace") if text else os.strerror(err)

    def _check(self, ok: int, action: str) -> None:
        if ok != 1:
            err = self._errno()
            raise translate(self.family, f"cannot {action} in", err, self._strerror(err), table=self.name)

    # ---- reading ------------------------------------------------------------------------------

    def chains(self) -> list[str]:
        names: list[str] = []
        name = self._lib.iptc_first_chain(self._handle)
        while name:
            names.append(name.decode())
            name = self._lib.iptc_next_chain(self._handle)
        return names

    def rules(self, chain: str) -> list[tuple[bytes, str]]:
        """(entry bytes, target name) of each rule; the target is a chain name for jumps, "" when
        the rule has no target (counting only). Remembered until the chain is edited."""
        cached = self._rules.get(chain)
        if cached is not None:
            return cached
        out: list[tuple[bytes, str]] = []
        entry = self._lib.iptc_first_rule(chain.encode(), self._handle)
        while entry:
            raw = ct.string_at(entry, entry[0].next_offset)
            target = self._lib.iptc_get_target(entry, self._handle)
            out.append((raw, target.decode() if target else ""))
            entry = self._lib.iptc_next_rule(entry, self._handle)
        self._rules[chain] = out
        return out

    # ---- editing (in memory until commit) -----------------------------------------------------

    def _edited(self, chain: str) -> None:
        self.dirty = True
        self._rules.pop(chain, None)

    def create_chain(self, chain: str) -> None:
        self._check(self._lib.iptc_create_chain(chain.encode(), self._handle), f"create chain {chain}")
        self._edited(chain)

    def delete_chain(self, chain: str) -> None:
        """Flush, then delete, a user chain (nothing may jump to it any more)."""
        self._check(self._lib.iptc_flush_entries(chain.encode(), self._handle), f"flush chain {chain}")
        self._check(self._lib.iptc_delete_chain(chain.encode(), self._handle), f"delete chain {chain}")
        self._edited(chain)

    def append(self, chain: str, entry: bytes) -> None:
        buf = ct.create_string_buffer(entry, len(entry))
        self._check(self._lib.iptc_append_entry(chain.encode(), buf, self._handle), f"add a rule to {chain}")
        self._edited(chain)

    def insert(self, chain: str, entry: bytes, position: int) -> None:
        """Insert before the rule at 0-based `position`."""
        buf = ct.create_string_buffer(entry, len(entry))
        ok = self._lib.iptc_insert_entry(chain.encode(), buf, position, self._handle)
        self._check(ok, f"insert a rule into {chain}")
        self._edited(chain)

    def delete(self, chain: str, position: int) -> None:
        """Delete the rule at 0-based `position`."""
        ok = self._lib.iptc_delete_num_entry(chain.encode(), position, self._handle)
        self._check(ok, f"delete a rule from {chain}")
        self._edited(chain)

    def commit(self) -> None:
        """Send every edit to the kernel in one table replace (no-op when nothing changed)."""
        if not self.dirty:
            return
        if self._lib.iptc_commit(self._handle) == 1:
            self.dirty = False
            return
        err = self._errno()
        text = self._strerror(err)
        what = f"{_TOOL[self.family]} {self.name} table"
        if err == errno.EAGAIN:
            raise CommitConflict(f"{what} changed during commit: {text}")
        if err in _PRIVILEGE:
            raise translate(self.family, "cannot write", err, table=self.name)
        if err == errno.ENOENT:
            raise UnsupportedEnvironment(
                f"the kernel lacks a netfilter extension these {_TOOL[self.family]} rules need ({text})"
            )
        raise translate(self.family, "cannot write", err, text, table=self.name)
