"""Per-socket identity for a cgroup jail: the socket's own mark (SO_MARK), set from outside.

A socket created before its holder was jailed (or handed to it later) keeps the cgroup it was
created in (docs/kernel-facts.md #1), so the jail's `-m cgroup` rule never sees it. Address selectors
cover only sockets sock_diag lists with an address: an unbound TCP socket that connects after
the block, a raw/ICMP socket (ping) or UDP-Lite have none. `pidfd_getfd(2)` gives root a
duplicate of the holder's fd, and `setsockopt(SO_MARK)` on it marks the *same* socket
(docs/kernel-facts.md #9):
every later packet of it, whatever it connects to, carries the mark, and one `-m mark` rule per
jail sends it to the jail's chain.

netjail owns one bit range of the mark (`NETJAIL_MARK_MASK`); a socket already carrying a mark
outside that range belongs to someone else's scheme (policy routing, a VPN) and is left alone
(`block` refuses it first, see mark_check), unless the jail was made with --force. The original
mark of every socket marked is remembered (by inode) and put back on release.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from netjail.backends.errors import BadInput, OperationFailed
from netjail.backends.system import fd_tables, identity

MASK_ENV = "NETJAIL_MARK_MASK"
# Bits 24-31. Well-known users of the mark sit below: WireGuard's wg-quick (51820, low 16 bits),
# kube-proxy (0x4000, 0x8000), Cilium's magic marks (0x0f00), Istio (0x539), Tailscale
# (0x40000/0x80000 under mask 0xff0000). Calico's default mask 0xffff0000 and Cilium's identity
# bits overlap any choice above bit 16: set NETJAIL_MARK_MASK on such hosts.
DEFAULT_MASK = 0xFF000000
_PIDFD_GETFD = 438  # every architecture but alpha
_SO_DOMAIN = getattr(socket, "SO_DOMAIN", 39)
_SO_MARK = getattr(socket, "SO_MARK", 36)
_INET = (socket.AF_INET, socket.AF_INET6)
_AF_PACKET = getattr(socket, "AF_PACKET", 17)

_libc = ctypes.CDLL(None, use_errno=True)


class Unavailable(Exception):
    """pidfd_getfd cannot be used here (EPERM: no ptrace access; ENOSYS: kernel < 5.6)."""


def mark_mask(text: str | None = None) -> int:
    """The mask netjail owns: NETJAIL_MARK_MASK as a hex integer, one contiguous run of bits."""
    raw = os.environ.get(MASK_ENV) if text is None else text
    if raw is None or raw == "":
        return DEFAULT_MASK
    try:
        mask = int(raw, 16)
    except ValueError:
        raise BadInput(f"bad {MASK_ENV} {raw!r}: a hex integer such as 0xff000000") from None
    low = mask & -mask
    if not 0 < mask <= 0xFFFFFFFF or (mask + low) & mask:
        raise BadInput(f"bad {MASK_ENV} {raw!r}: one contiguous run of bits within 32 bits")
    return mask


def allocate(mask: int, used: Iterable[int]) -> int:
    """The smallest mark value inside `mask` no other jail uses."""
    step = mask & -mask
    taken = {u & mask for u in used}
    for value in range(step, mask + 1, step):
        if value & mask == value and value not in taken:
            return value
    raise OperationFailed(f"no free socket mark left in {MASK_ENV} {mask:#x}: unblock a jail first")


def _pidfd_getfd(pidfd: int, fd: int) -> int:
    got = int(_syscall(_PIDFD_GETFD, pidfd, fd, 0))
    if got < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return got


@dataclass(slots=True)
class Held:
    """One socket fd of a process, duplicated into ours (close it: `sock.detach()` is not ours)."""

    inode: int
    dup: int

    def domain(self) -> int:
        return _getsockopt_int(self.dup, _SO_DOMAIN)

    def mark(self) -> int:
        return _getsockopt_int(self.dup, _SO_MARK)

    def set_mark(self, value: int) -> None:
        buf = _BUFFERS.value
        buf.value = value
        if _setsockopt(self.dup, socket.SOL_SOCKET, _SO_MARK, ctypes.byref(buf), 4) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


# Straight to libc on the duplicate, with prototypes and buffers made once per thread: a Python
# socket object per call (plus the dup it needs to own), or a fresh ctypes buffer, cost more
# than the syscall itself, several times per socket of a 2,000-socket server.
_getsockopt_c = _libc.getsockopt
_getsockopt_c.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_getsockopt_c.restype = ctypes.c_int
_setsockopt = _libc.setsockopt
_setsockopt.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
_setsockopt.restype = ctypes.c_int
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.value = ctypes.c_uint32()
        self.length = ctypes.c_uint32()
        self.linger = (ctypes.c_int * 2)()
        self.value_ref = ctypes.byref(self.value)
        self.length_ref = ctypes.byref(self.length)


_BUFFERS = _Buffers()


def _getsockopt_int(fd: int, opt: int) -> int:
    b = _BUFFERS
    b.length.value = 4
    if _getsockopt_c(fd, socket.SOL_SOCKET, opt, b.value_ref, b.length_ref) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return b.value.value


def _lingers(fd: int) -> bool:
    """SO_LINGER on with a timeout: closing the last reference may block that long."""
    b = _BUFFERS
    b.length.value = 8
    if _getsockopt_c(fd, socket.SOL_SOCKET, socket.SO_LINGER, b.linger, b.length_ref) != 0:
        return False
    return bool(b.linger[0]) and b.linger[1] > 0


@dataclass(slots=True)
class FdScan:
    """What one read of a process's fd tables saw besides the sockets it duplicated: every
    socket inode (skipped ones too) and the anonymous inodes (`anon_inode:[io_uring]` ...), so
    a block needs no other pass over a 2,000-fd table to report on it."""

    inodes: set[int] = field(default_factory=set)
    anon: set[str] = field(default_factory=set)


def held(
    pid: int, start_time: int, wanted: Callable[[int], bool] | None = None, scan: FdScan | None = None
) -> Iterator[Held]:
    """Duplicates of pid's socket fds, one per inode (a socket on two fds is one socket), each
    closed once the caller moves on, from every fd table the process has (fd_tables: threads
    with tables of their own, a zombie leader's live threads). `wanted(inode) -> bool` skips the
    rest without a syscall. Raises Unavailable when the kernel refuses pidfd_getfd itself; a
    process that exited or changed identity yields nothing."""
    stat = identity.read_stat(pid)
    if stat is None or stat.start_time != start_time:
        return
    seen: set[int] = set()
    for tid in fd_tables.table_holders(pid):
        yield from _held_in(pid, tid, start_time, seen, wanted, scan)


def _held_in(
    pid: int,
    tid: int,
    start_time: int,
    seen: set[int],
    wanted: Callable[[int], bool] | None,
    scan: FdScan | None,
) -> Iterator[Held]:
    try:
        pidfd = fd_tables.open_pidfd(pid, tid)
    except OSError:
        return
    try:
        stat = identity.read_stat(pid)
        if stat is None or stat.start_time != start_time:
            return  # the PID names another process now: the pidfd holds that one
        path = fd_tables.fd_dir(pid, tid)
        try:
            dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                names = os.listdir(path.encode())
            except BaseException:
                os.close(dirfd)
                raise
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):  # no ptrace access: fds unreadable too
                raise Unavailable(exc.strerror) from None
            return
        try:
            yield from _held_fds(pidfd, dirfd, names, seen, wanted, scan)
        finally:
            os.close(dirfd)
    finally:
        os.close(pidfd)


def _held_fds(
    pidfd: int,
    dirfd: int,
    names: list[bytes],
    seen: set[int],
    wanted: Callable[[int], bool] | None,
    scan: FdScan | None,
) -> Iterator[Held]:
    readlink = os.readlink
    for name in names:
        try:
            link = readlink(name, dir_fd=dirfd)  # bytes: no decoding of links mostly dropped
        except OSError:
            continue
        if link[:8] != b"socket:[":
            if scan is not None and link[:11] == b"anon_inode:":
                scan.anon.add(link.decode("ascii", "replace"))
            continue
        inode = int(link[8:-1])
        if scan is not None:
            scan.inodes.add(inode)
        if inode in seen or (wanted is not None and not wanted(inode)):
            continue
        seen.add(inode)
        try:
            got = _pidfd_getfd(pidfd, int(name))
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                raise Unavailable(exc.strerror) from None
            continue  # closed meanwhile (EBADF)
        try:
            if os.fstat(got).st_ino == inode:  # the fd number was not reused meanwhile
                yield Held(inode, got)
        finally:
            _close(got)


def _close(dup: int) -> None:
    """Close our duplicate. If the member closed its fd meanwhile, ours is the last reference,
    and a socket with SO_LINGER set and unsent data would block the close for the linger time:
    such a close goes to a thread of its own, so a jailed process cannot stall netjail."""
    if _lingers(dup):
        threading.Thread(target=os.close, args=(dup,), name="close-lingering", daemon=True).start()
    else:
        os.close(dup)


@dataclass(slots=True)
class MarkResult:
    marked: dict[int, int] = field(default_factory=dict)  # inode -> original mark
    foreign: dict[int, int] = field(default_factory=dict)  # inode -> mark not ours, left alone
    other: set[int] = field(default_factory=set)  # not AF_INET/AF_INET6: netfilter-blind or local
    packet: set[int] = field(default_factory=set)  # AF_PACKET among `other`: below netfilter
    unavailable: str | None = None
    scan: FdScan = field(default_factory=FdScan)


def mark_sockets(
    pid: int,
    start_time: int,
    value: int,
    mask: int,
    skip: Callable[[int], bool] | None = None,
    force: bool = False,
) -> MarkResult:
    """Put `value` on every AF_INET/AF_INET6 socket pid holds, except inodes `skip(inode)` says;
    one with a mark outside `mask` too when `force`, its whole original mark remembered."""
    result = MarkResult()

    def wanted(inode: int) -> bool:
        return skip is None or not skip(inode)

    try:
        for h in held(pid, start_time, wanted, result.scan):
            try:
                domain = h.domain()
                if domain not in _INET:
                    result.other.add(h.inode)
                    if domain == _AF_PACKET:
                        result.packet.add(h.inode)
                    continue
                old = h.mark()
                if old & ~mask and not force:
                    result.foreign[h.inode] = old
                    continue
                if old != value:
                    h.set_mark(value)
                # a mark inside the range alone is netjail's own (a block killed half-way)
                result.marked[h.inode] = old if old & ~mask else 0
            except OSError:
                continue  # not a socket after all, or gone
    except Unavailable as exc:
        result.unavailable = str(exc)
    return result


def restore(
    pid: int,
    start_time: int,
    originals: Mapping[int, int],
    mask: int,
    value: int | None = None,
    skip: Callable[[int], bool] | None = None,
) -> set[int]:
    """Put the original mark back on the sockets pid still holds; the inodes restored. With
    `value`, also take netjail's bits off any other socket carrying exactly that jail mark (but
    those `skip(inode)` names): made in the jail since the last pass (sock_create_mark), or
    accepted from a marked listener (a child socket inherits its listener's mark)."""
    done: set[int] = set()

    def wanted(inode: int) -> bool:
        return inode in originals or (value is not None and (skip is None or not skip(inode)))

    try:
        for h in held(pid, start_time, wanted):
            try:
                now = h.mark()
                if h.inode in originals:
                    if now & mask:  # untouched by anyone since we set it
                        h.set_mark(originals[h.inode])
                    done.add(h.inode)
                elif value is not None and now & mask == value:
                    h.set_mark(now & ~mask)
                    done.add(h.inode)
            except OSError:
                continue
    except Unavailable:
        pass
    return done
