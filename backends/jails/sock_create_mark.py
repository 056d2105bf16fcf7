"""The jail's mark on every INET socket created inside its cgroup, from the moment it exists.

The watcher marks sockets a member holds once per period (jail_marks), so a socket opened inside
the jail between two periods would carry no mark for up to a period: what it sends is cut by the
cgroup rule, but what it receives is not (INPUT never sees a cgroup on loopback, where early
demux does not run), and a listener's SYN-ACKs pass (docs/kernel-facts.md #2). Measured by the
attack review: 250 of 250 datagrams reached a connected UDP socket opened after the block.

A cgroup BPF program of type CGROUP_SOCK attached at INET_SOCK_CREATE runs in the kernel for
every AF_INET/AF_INET6 socket created by a process of the cgroup (or a descendant) and may set
`bpf_sock.mark`: four instructions, no maps, no helpers. Attached with BPF_F_ALLOW_MULTI, beside
whatever systemd or others attached; it goes away with the cgroup. It needs CAP_BPF or
CAP_SYS_ADMIN and a kernel with cgroup BPF (4.10+; docs/kernel-facts.md #17);
where it cannot be attached the watcher's
period marking remains, and `attach` says why.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351, "riscv64": 280}
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
PROG_TYPE_CGROUP_SOCK = 9
ATTACH_INET_SOCK_CREATE = 2
F_ALLOW_MULTI = 2
_MARK_OFFSET = 16  # offsetof(struct bpf_sock, mark): bound_dev_if, family, type, protocol, mark


def _insn(code: int, dst: int, src: int, off: int, imm: int) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(mark: int) -> bytes:
    """w2 = mark; *(u32 *)(r1 + mark offset) = w2; r0 = 1 (allow the socket); exit."""
    imm = mark - (1 << 32) if mark >= 1 << 31 else mark
    return b"".join(
        (
            _insn(0xB4, 2, 0, 0, imm),  # BPF_ALU | BPF_MOV | BPF_K: 32-bit move
            _insn(0x63, 1, 2, _MARK_OFFSET, 0),  # BPF_STX | BPF_MEM | BPF_W
            _insn(0xB7, 0, 0, 0, 1),  # BPF_ALU64 | BPF_MOV | BPF_K
            _insn(0x95, 0, 0, 0, 0),  # BPF_JMP | BPF_EXIT
        )
    )


def _bpf(cmd: int, attr: bytes) -> int:
    machine = os.uname().machine  # what platform.machine() reads (its import: ~2 ms a block)
    nr = _NR_BPF.get(machine)
    if nr is None:
        raise OSError(0, f"no bpf syscall number known for {machine}")
    buf = ctypes.create_string_buffer(attr, 128)
    got = int(_libc.syscall(nr, cmd, buf, 128))
    if got < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return got


def attach(mount: Path, rel: str, mark: int) -> str | None:
    """Mark every INET socket created in cgroup `rel` from now on; None, or why it could not."""
    code = program(mark)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    # union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
    # log_size, log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex,
    # expected_attach_type
    attr = struct.pack(
        "<IIQQIIQII16sII",
        PROG_TYPE_CGROUP_SOCK,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        0,
        0,
        0,
        0,
        0,
        b"netjail_mark",
        0,
        ATTACH_INET_SOCK_CREATE,
    )
    try:
        prog = _bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        return f"cannot load the socket-marking cgroup BPF program: {exc.strerror}"
    try:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        cgroup = os.open(mount / rel.lstrip("/"), flags)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIII", cgroup, prog, ATTACH_INET_SOCK_CREATE, F_ALLOW_MULTI))
        finally:
            os.close(cgroup)
    except OSError as exc:
        return f"cannot attach the socket-marking program to {rel}: {exc.strerror}"
    finally:
        os.close(prog)  # the attachment holds the program now
    return None
