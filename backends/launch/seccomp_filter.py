"""A seccomp filter that takes the network away from a process: it may not create sockets of any
family but AF_UNIX and AF_NETLINK. Loading it needs no root (no_new_privs is set first).

What the filter does, native architecture only:

- socket() and socketpair() fail with EACCES unless the domain is AF_UNIX or AF_NETLINK. That
  covers AF_INET, AF_INET6 and AF_PACKET as asked, and it is an allow-list on purpose: several
  other families reach the network without privileges (AF_SMC and AF_RXRPC run over TCP/UDP,
  AF_RDS over TCP, AF_TIPC over UDP bearers, AF_VSOCK to the hypervisor), so denying only the
  three famous ones would leave doors open.
- The domain is compared as the kernel reads it, a 32-bit int: a 64-bit comparison on the raw
  register would let `socket(0x100000002, ...)` (upper bits set, AF_INET to the kernel) slip past
  an "== AF_INET" rule. Here any value with upper bits set is denied.
- io_uring_setup / io_uring_enter / io_uring_register fail with ENOSYS. IORING_OP_SOCKET
  (Linux 5.19+) creates sockets without the socket() syscall, where seccomp cannot see them
  (docs/kernel-facts.md #22).
  ENOSYS rather than EACCES because programs treat ENOSYS as "no io_uring in this kernel" and
  fall back to plain syscalls (libuv, liburing users, tokio-uring), which the filter does see.
- socketcall(), on architectures that still have it (i386, s390x, ppc), is denied for
  SYS_SOCKET and SYS_SOCKETPAIR: its arguments sit in user memory that seccomp cannot read, so
  the domain cannot be checked there. It does not exist on x86_64.
- System calls of another ABI (a 32-bit i386 binary on x86_64, `int 0x80` from 64-bit code)
  kill the process: the filter only knows the native syscall numbers, and letting a foreign ABI
  through unfiltered would be a bypass. 32-bit programs therefore cannot run under it.

Known limits (not closable by a syscall filter): file descriptors already open before the
filter (stdio that is itself a socket, descriptors passed over AF_UNIX with SCM_RIGHTS), any
helper reachable over AF_UNIX that opens connections on the jailed process's behalf (a SOCKS
proxy, a D-Bus service), and other processes of the same user it may ptrace or write through
/proc/PID/mem. netfilter never sees a socket that was not created, so there is nothing to count.
"""

from __future__ import annotations

import errno
import socket
from types import ModuleType
from typing import Any

from netjail.backends.errors import OperationFailed, UnsupportedEnvironment

ALLOWED_FAMILIES = (socket.AF_UNIX, socket.AF_NETLINK)
SOCKET_SYSCALLS = ("socket", "socketpair")
IO_URING_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")
SYS_SOCKET = 1  # socketcall() call numbers, include/uapi/linux/net.h
SYS_SOCKETPAIR = 8


def load_pyseccomp() -> ModuleType:
    """pyseccomp, imported on first use: it dlopens libseccomp and fails when it is missing."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as exc:
        raise UnsupportedEnvironment(f"seccomp needs libseccomp (libseccomp2): {exc}") from None
    module: ModuleType = pyseccomp
    return module


def denied_domains(allowed: tuple[int, ...] = ALLOWED_FAMILIES) -> tuple[tuple[str, int], ...]:
    """The filter's domain comparisons as (op, value) pairs, each one rule: every 32-bit value but
    the allowed ones, plus everything with the upper 32 bits set (one GE rule).

    libseccomp accepts one comparison per argument in a rule, so "not in {1, 16}" is spelled as
    EQ rules for each denied value below the highest allowed one, and one GE rule above it.
    """
    top = max(allowed)
    eq = tuple(("EQ", d) for d in range(top) if d not in allowed)
    return (*eq, ("GE", top + 1))


def build_socket_filter() -> Any:
    """The filter as a pyseccomp `SyscallFilter`, built but not loaded.

    Build it before fork and `load()` it in the child: the child then runs no Python beyond one
    libseccomp call, which matters when the parent has threads.
    """
    sc = load_pyseccomp()
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        flt.set_attr(sc.Attr.CTL_NNP, 1)
        flt.set_attr(sc.Attr.CTL_TSYNC, 1)  # every thread of the caller, not just the current one
        deny = sc.ERRNO(errno.EACCES)
        ops = {"EQ": sc.EQ, "GE": sc.GE}
        for name in SOCKET_SYSCALLS:
            for op, value in denied_domains():
                flt.add_rule(deny, name, sc.Arg(0, ops[op], value))
        for name in IO_URING_SYSCALLS:
            flt.add_rule(sc.ERRNO(errno.ENOSYS), name)
        if sc.resolve_syscall(sc.Arch.NATIVE, "socketcall") >= 0:
            for call in (SYS_SOCKET, SYS_SOCKETPAIR):
                flt.add_rule(deny, "socketcall", sc.Arg(0, sc.EQ, call))
    except OSError as exc:
        raise OperationFailed(f"cannot build the seccomp filter: {exc.strerror or exc}") from None
    return flt


def load_filter(flt: Any) -> None:
    """Load a filter from `build_socket_filter` into the calling process (all its threads, and
    every child it creates afterwards). Sets no_new_privs, so it needs no root. Irreversible."""
    try:
        flt.load()
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise UnsupportedEnvironment(
                "the kernel refused the seccomp filter (no CONFIG_SECCOMP_FILTER?)"
            ) from None
        raise OperationFailed(f"cannot load the seccomp filter: {exc.strerror or exc}") from None


def install_socket_filter() -> None:
    """Build and load the filter in the calling process: from now on it can create only AF_UNIX
    and AF_NETLINK sockets. Irreversible; inherited by every child."""
    load_filter(build_socket_filter())
