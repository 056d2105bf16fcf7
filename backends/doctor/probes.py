"""Probes `netjail doctor` runs against the real kernel, in the caller's network namespace.

Each probe creates only objects of its own (a chain named NETJAIL-PROBE-<pid> that nothing
jumps to, a loopback TCP connection of its own) and removes them before returning; the rules
and sockets of everyone else are never touched. All need CAP_NET_ADMIN.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import subprocess
from collections.abc import Iterable
from typing import Any

from netjail.backends.firewall.xtables_lock import xtables_lock
from netjail.backends.system import tools
from netjail.backends.system.stderr_capture import stderr_captured

PROBE_CHAIN_PREFIX = "NETJAIL-PROBE-"
_PROBE_CHAIN = re.compile(re.escape(PROBE_CHAIN_PREFIX) + r"(\d+)$")
# python-iptables attribute that carries each probed match's one option.
PROBE_OPTION = {"cgroup": "path", "owner": "uid_owner"}


def probe_chain_name(pid: int | None = None) -> str:
    return f"{PROBE_CHAIN_PREFIX}{os.getpid() if pid is None else pid}"


def _pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _remove_chain(iptc: Any, table: Any, name: str) -> None:
    iptc.Chain(table, name).flush()
    table.delete_chain(name)


def _probe_family(iptc: Any, family: str, match: str, value: str) -> None:
    """Load one rule using `match` into a fresh probe chain of one family's filter table, then
    remove the chain. Raises with the kernel's or libiptc's reason when the match is refused."""
    table_cls, rule_cls = (iptc.Table, iptc.Rule) if family == "inet" else (iptc.Table6, iptc.Rule6)
    name = probe_chain_name()
    with xtables_lock():
        table = table_cls(table_cls.FILTER)
        saved_autocommit = table.autocommit
        table.autocommit = False  # one atomic commit per step; a refused rule changes nothing
        try:
            table.refresh()
            for chain in table.chains:
                found = _PROBE_CHAIN.match(chain.name)
                # Leftovers of a probe killed mid-way (or of this PID) are ours to remove.
                if found and (int(found.group(1)) == os.getpid() or not _pid_alive(int(found.group(1)))):
                    _remove_chain(iptc, table, chain.name)
            rule = rule_cls()
            setattr(rule.create_match(match), PROBE_OPTION[match], value)
            rule.create_target("RETURN")
            table.create_chain(name).append_rule(rule)
            try:
                table.commit()
            finally:
                table.refresh()
            try:
                _remove_chain(iptc, table, name)
                table.commit()
            except Exception as exc:
                raise RuntimeError(
                    f"probe chain {name} left behind ({exc}): remove it with "
                    f"`iptables-legacy -F {name}; iptables-legacy -X {name}`"
                ) from exc
            finally:
                table.refresh()
        finally:
            table.autocommit = saved_autocommit


def probe_xt_match(match: str, value: str, families: Iterable[str] = ("inet", "inet6")) -> dict[str, str]:
    """Try `-m <match>` (cgroup: --path VALUE, owner: --uid-owner VALUE) in the filter tables of
    `families` in this network namespace. Returns {"IPv4"|"IPv6": reason} for failures."""
    import iptc  # loads libxtables; a broken install fails only this probe

    errors: dict[str, str] = {}
    for family, label in (("inet", "IPv4"), ("inet6", "IPv6")):
        if family not in families:
            continue  # a family netjail does not cover here (see the families check)
        with stderr_captured() as noise:
            try:
                _probe_family(iptc, family, match, value)
            except Exception as exc:
                said = " ".join(noise().split())
                # python-iptables puts libiptc's bytes message in its text: "b'Invalid argument'".
                reason = re.sub(r"\bb'([^']*)'", r"\1", str(exc)) or type(exc).__name__
                errors[label] = reason + (f" ({said})" if said else "")
    return errors


def probe_sock_destroy(timeout: float = 5.0) -> str | None:
    """Destroy a loopback TCP connection of our own with `ss -K`; None when the kernel did so,
    else why not. The ss filter names our connection's exact addresses and ports, and a TCP
    4-tuple is unique in a network namespace, so no other socket can match."""
    ss = tools.find("ss")
    if ss is None:
        return "ss not installed"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        try:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            client = stack.enter_context(socket.create_connection(server.getsockname(), timeout=timeout))
            stack.enter_context(server.accept()[0])
        except OSError as exc:
            return f"loopback TCP unavailable here: {exc.strerror or exc}"
        local, peer = client.getsockname(), client.getpeername()
        out = subprocess.run(
            [ss, "-K", "-t", "-n", "-H", "src", f"{local[0]}:{local[1]}", "dst", f"{peer[0]}:{peer[1]}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C"},
        )
        # A destroyed socket reports ECONNABORTED to its owner.
        if client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNABORTED:
            return None
        reason = (out.stderr.strip().splitlines() or ["the kernel refused or ignored SOCK_DESTROY"])[0]
        return f"`ss -K` did not close a test connection: {reason}"


def probe_pidfd_getfd(timeout: float = 5.0) -> str | None:
    """Take a copy of a socket fd from a child of our own with pidfd_getfd(2), as block does to
    mark a member's sockets; None when it worked, else the kernel's reason (ENOSYS: kernel <
    5.6; EPERM: Yama ptrace_scope 3 or no CAP_SYS_PTRACE). A child, not this process: taking
    one's own fd skips the ptrace access check that Yama and capabilities apply."""
    import sys

    from netjail.backends.jails import socket_marks

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"],
            stdin=held.fileno(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        pidfd = os.pidfd_open(child.pid)
        try:
            os.close(socket_marks._pidfd_getfd(pidfd, 0))  # its stdin: our socket
            return None
        except OSError as exc:
            return f"pidfd_getfd: {exc.strerror or exc}"
        finally:
            os.close(pidfd)
    except OSError as exc:
        return f"pidfd_open: {exc.strerror or exc}"
    finally:
        child.kill()
        child.wait(timeout)


def probe_ipset() -> tuple[str | None, set[str]]:
    """Create and destroy one set of each type the fallback uses, under a name of netjail's own
    (so a probe killed half-way leaves nothing `netjail reset` would not remove). Returns (why
    not, or None; netjail's sets present now)."""
    from netjail.backends.errors import NetjailError
    from netjail.backends.firewall.fallback_sets import set_name
    from netjail.backends.firewall.ipsets import Ipsets

    try:
        with Ipsets() as sets:
            present = sets.names()
            for kind in ("flow", "port"):
                name = set_name("inet", f"probe{os.getpid()}", kind)
                sets.create(name, "inet", kind)
                sets.destroy(name)
            return None, present
    except NetjailError as exc:
        return str(exc), set()


def probe_nflog() -> str | None:
    """Bind the attempts log's NFLOG group in the caller's namespace and let it go; None when
    that worked, else why not. A group already held is netjail's own watcher while jails exist
    (or another reader, which would keep the watcher from logging)."""
    import errno

    from netjail.backends.attempts import prefix
    from netjail.backends.attempts.nflog import NflogGroup

    group = prefix.group()
    try:
        NflogGroup(group, snaplen=64).close()
    except OSError as exc:
        # the kernel answers EPERM, not EBUSY, for a group another socket is bound to (we asked
        # as root: the capability is there)
        if exc.errno in (errno.EPERM, errno.EBUSY):
            return f"NFLOG group {group} is held by another reader (netjail's watcher, while jails exist)"
        return f"NFLOG group {group} cannot be bound: {os.strerror(exc.errno or 0)}"
    return None
