"""libnftables, the library behind `nft`, through the distribution's Python binding (python3-nftables).

The binding is a thin ctypes wrapper (`nftables.Nftables`) that is not on PyPI: Debian ships it as
python3-nftables in the system's dist-packages, which netjail's virtualenv does not see. It is
loaded here by file path, and only from a root-owned file in a root-owned directory tree
(trusted_paths): netjail runs as root, and importing a module another user could write would run
their code as root.

Commands go in as nft's own syntax, one buffer per transaction: libnftables sends a buffer to the
kernel as one batch, applied all or nothing (measured: a batch whose last command fails leaves no
trace of the ones before, docs/firewall-nftables.md). Listings come back as JSON (decoded with
json's C decoder). Text is written rather than JSON because nft 1.0.6's JSON parser refuses a `socket`
expression as a map key (`socket cgroupv2 level N vmap @m`), which the cgroup dispatch needs.
"""

from __future__ import annotations

import json  # the binding imports it anyway; its C decoder
import os
import sys
import threading

from netjail.backends.errors import InsufficientPrivilege, OperationFailed, UnsupportedEnvironment
from netjail.backends.system.trusted_paths import path_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (`netjail counters` loads this)
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# where distributions put the binding (Debian/Ubuntu first); the first trusted file found is used
BINDING_PATHS = (
    "/usr/lib/python3/dist-packages/nftables/nftables.py",
    "/usr/lib64/python3/site-packages/nftables/nftables.py",
    "/usr/lib/python3/site-packages/nftables/nftables.py",
)
PACKAGE_HINT = "install python3-nftables (Debian/Ubuntu) or python3-nftables (Fedora)"
TABLE = "inet netjail"
# libnftables commits through select(), which aborts the process (glibc's FD_SET check) for a
# netlink socket numbered 1024 or above (measured: SIGABRT in nft_run_cmd_from_buffer)
FD_SETSIZE = 1024
# a process holding that many fds commits through a fresh interpreter instead, whose socket is
# fd 3: the same library and binding, loaded from the same trusted file
_CHILD = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('netjail_nftables_binding', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
    "rc, out, err = m.Nftables().cmd(sys.stdin.read())\n"
    "sys.stderr.write(err); sys.exit(0 if rc == 0 else 1)\n"
)

_lock = threading.Lock()
_module: ModuleType | None = None
_path: str | None = None


class NftError(OperationFailed):
    """libnftables refused a command; `missing` when it named an object that does not exist."""

    def __init__(self, message: str, *, missing: bool = False, denied: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        self.denied = denied


def _candidates() -> list[str]:
    found = [p for p in BINDING_PATHS if os.path.isfile(p)]
    for base in ("/usr/lib", "/usr/lib64"):
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for n in names:  # /usr/lib/python3.11/site-packages/nftables (Fedora, Arch)
            if n.startswith("python3"):
                for sub in ("site-packages", "dist-packages"):
                    p = os.path.join(base, n, sub, "nftables", "nftables.py")
                    if p not in found and os.path.isfile(p):
                        found.append(p)
    return found


def binding_path() -> tuple[str | None, str]:
    """(path of a trusted binding, why none when None)."""
    problems = []
    for path in _candidates():
        problem = path_problem(path)
        if problem is None:
            return path, ""
        problems.append(f"{path}: {problem}")
    if problems:
        return None, "; ".join(problems)
    return None, f"the libnftables Python binding is not installed ({PACKAGE_HINT})"


def load_binding() -> ModuleType:
    """The binding's module, loaded once per process from a trusted file."""
    global _module, _path
    with _lock:
        if _module is not None:
            return _module
        import importlib.util

        path, why = binding_path()
        if path is None:
            raise UnsupportedEnvironment(f"nftables backend: {why}")
        spec = importlib.util.spec_from_file_location("netjail_nftables_binding", path)
        if spec is None or spec.loader is None:
            raise UnsupportedEnvironment(f"nftables backend: cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except OSError as exc:  # libnftables.so.1 missing: the binding loads it at import
            raise UnsupportedEnvironment(f"nftables backend: libnftables is not loadable ({exc})") from None
        _module, _path = module, path
        return module


class Nft:
    """One libnftables context: text commands in, JSON listings out. Not thread-safe by itself:
    callers hold their own lock (one context per backend instance)."""

    def __init__(self) -> None:
        module = load_binding()
        before = _open_fds()
        try:
            ctx = module.Nftables()
        except OSError as exc:
            raise UnsupportedEnvironment(f"nftables backend: libnftables is not loadable ({exc})") from None
        ctx.set_json_output(True)
        ctx.set_numeric_proto_output(True)  # protocols as numbers: the decoder needs no names table
        ctx.set_numeric_symbol_output(True)  # nfproto, ICMPv6 types as numbers
        ctx.set_handle_output(True)
        self._ctx = ctx
        self._high_fd = any(fd >= FD_SETSIZE for fd in _open_fds() - before)

    def run(self, commands: str) -> None:
        """Run a buffer of commands as one transaction; NftError naming the first error."""
        if self._high_fd:
            import subprocess

            done = subprocess.run(
                [sys.executable, "-I", "-c", _CHILD, _path or ""],
                input=commands,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise _error(done.stderr or f"exit status {done.returncode}")
            return
        rc, _out, err = self._ctx.cmd(commands)
        if rc != 0:
            raise _error(err)

    def list(self, what: str) -> list[dict[str, Any]] | None:
        """The JSON objects of `list <what>` (None: no such table or object)."""
        rc, out, err = self._ctx.cmd(f"list {what}")
        if rc != 0:
            exc = _error(err)
            if exc.missing:
                return None
            raise exc
        if not out:
            return []
        items: list[dict[str, Any]] = json.loads(out)["nftables"]
        return items


def _open_fds() -> set[int]:
    try:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}
    except OSError:
        return set()


def _error(err: str) -> NftError:
    lines = [line.strip() for line in err.splitlines() if line.strip().startswith("Error:")]
    first = lines[0][len("Error:") :].strip() if lines else (err.strip().splitlines() or ["unknown error"])[0]
    denied = "Operation not permitted" in err or "Permission denied" in err
    if denied:
        return NftError(f"nftables refused netjail: {first} (needs root: CAP_NET_ADMIN)", denied=True)
    missing = "No such file or directory" in first
    return NftError(f"nftables refused netjail's change: {first}", missing=missing)


def raise_denied(exc: NftError) -> None:
    if exc.denied:
        raise InsufficientPrivilege(str(exc)) from None
