"""The seccomp program netjail builds, read back as libseccomp's pseudo filter code (not loaded)."""

from __future__ import annotations

import re
import socket
import tempfile

from netjail.backends.launch.seccomp_filter import build_socket_filter, denied_domains


def test_denied_domains_are_everything_but_unix_and_netlink() -> None:
    rules = denied_domains()
    eq = {v for op, v in rules if op == "EQ"}
    assert eq == set(range(16)) - {socket.AF_UNIX}
    assert ("GE", socket.AF_NETLINK + 1) in rules
    covered = lambda d: d in eq or d >= socket.AF_NETLINK + 1  # noqa: E731
    for domain in (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET, 40, 43, 44, 1 << 32 | 2):
        assert covered(domain)
    assert not covered(socket.AF_UNIX) and not covered(socket.AF_NETLINK)


def pfc() -> str:
    with tempfile.TemporaryFile("w+") as f:
        build_socket_filter().export_pfc(f)
        f.seek(0)
        return f.read()


def test_program_denies_socket_families_by_their_32_bit_value() -> None:
    text = pfc()
    socket_block = text.split('syscall "socket"', 1)[1].split("# filter for syscall", 1)[0]
    # The low word is compared only after the high word is known to be zero; anything with
    # upper bits set is denied whole.
    assert "$a0.hi32 == 0" in socket_block
    assert re.search(r"if \(\$a0\.hi32 > 0\)\n\s+action ERRNO\(13\)", socket_block)
    denied_lo = {int(v) for v in re.findall(r"\$a0\.lo32 == (\d+)\)\n\s+action ERRNO\(13\)", socket_block)}
    assert {socket.AF_INET, socket.AF_INET6} <= denied_lo
    assert socket.AF_UNIX not in denied_lo and socket.AF_NETLINK not in denied_lo
    # AF_PACKET (17) and every family above AF_NETLINK (16): one range rule.
    assert re.search(r"if \(\$a0\.lo32 >= 17\)\n\s+action ERRNO\(13\)", socket_block)


def test_program_covers_socketpair_and_io_uring_and_kills_foreign_abis() -> None:
    text = pfc()
    assert 'syscall "socketpair"' in text
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert re.search(rf'syscall "{name}".*\n\s+if \(\$syscall == \d+\)\n\s+action ERRNO\(38\)', text)
    assert re.search(r"# default action\s+action ALLOW", text)
    assert re.search(r"# invalid architecture action\s+action KILL_PROCESS", text)
