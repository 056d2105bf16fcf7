"""block's refusal of a socket carrying another program's mark: the one-line reason."""

from __future__ import annotations

from netjail.backends.errors import EXIT_BAD_INPUT, ForeignMark
from netjail.backends.jails.mark_check import ForeignSocket, forced_notes, refusal
from netjail.backends.model import Socket


def test_refusal_names_pid_socket_address_and_mark() -> None:
    tcp6 = Socket("inet6", "tcp", "::1", 443, "fd00::2", 51000, "ESTABLISHED", 77)
    err = refusal([ForeignSocket(42, 77, 0xCA6C)], 0xFF000000, {77: tcp6})
    assert isinstance(err, ForeignMark) and err.exit_code == EXIT_BAD_INPUT
    assert str(err) == (
        "PID 42 socket:[77] (tcp [::1]:443 -> [fd00::2]:51000) carries mark 0xca6c, outside "
        "netjail's range 0xff000000: not blocked, another program's routing or VPN may rely on it "
        "(netjail block --force re-marks it until unblock)"
    )


def test_refusal_without_address_counts_the_others() -> None:
    found = [ForeignSocket(42, 77, 0x1), ForeignSocket(43, 78, 0x2), ForeignSocket(43, 79, 0x2)]
    text = str(refusal(found, 0xF0, {}))
    assert text.startswith("PID 42 socket:[77] carries mark 0x1, outside netjail's range 0xf0 (and 2 more")
    assert "\n" not in text


def test_forced_notes_name_only_sockets_that_had_a_foreign_mark() -> None:
    assert forced_notes("web", [[76, 0], [77, 0x1], [78, 0x2000000]], 0xFF000000) == [
        "jail 'web': socket:[77] carried mark 0x1 (another program's): re-marked "
        "(--force); its mark is put back on unblock"
    ]


def test_refusal_when_the_socket_closed_meanwhile() -> None:
    assert str(refusal([], 0xFF000000, {})).startswith(
        "a socket to jail carried a mark outside netjail's range 0xff000000: not blocked"
    )
