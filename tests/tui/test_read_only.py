"""netjail-tui run for real as `nobody` in a pseudo-terminal: read-only banner, blocking keys
explain themselves instead of acting, and the root-only counters source fails in its own panel
while the process table keeps working."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Peer

ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)")


class Terminal:
    """A child on a pty; `screen_text` is everything it drew, escapes and whitespace removed
    (Textual skips unchanged cells with cursor moves, so words are matched without spaces)."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int] = (120, 36)) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.raw = b""

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.raw += os.read(self.master, 65536)
            except OSError:  # the child closed the pty
                time.sleep(timeout)

    @property
    def screen_text(self) -> str:
        return re.sub(r"\s+", "", ANSI.sub(b"", self.raw).decode(errors="replace"))

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        needle = re.sub(r"\s+", "", text)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.screen_text:
                return
            self._read(0.1)
        raise AssertionError(f"{text!r} never appeared; screen text ends with: {self.screen_text[-600:]!r}")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def as_nobody() -> Iterator[Callable[[], Terminal]]:
    if os.geteuid() != 0:
        pytest.fail("switching to nobody needs root: run `make test`", pytrace=False)
    terminals: list[Terminal] = []

    def start() -> Terminal:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": "/tmp",
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "NETJAIL_STATE_DIR": os.environ["NETJAIL_STATE_DIR"],
        }
        argv = [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-m",
            "netjail.app.tui",
            "--interval",
            "0.5",
            "--counters-interval",
            "0.5",
        ]
        terminal = Terminal(argv, env)
        terminals.append(terminal)
        return terminal

    yield start
    for t in terminals:
        t.close()


def test_unprivileged_dashboard_is_read_only_and_explains(
    as_nobody: Callable[[], Terminal], spawn_peer: Callable[..., Peer]
) -> None:
    peer = spawn_peer("udp-bind", "127.0.0.1", 0, user="nobody")  # others' sockets are not readable
    term = as_nobody()
    term.wait_for("read-only: netjail is not running as root")
    term.wait_for("mode read-only")
    term.wait_for(f"{peer.pid}")  # the inventory works without root ...
    term.wait_for("jails and their counters need root")  # ... the counters source does not, and stops asking

    for key, what in (
        ("b", "block"),
        ("u", "unblock"),
        ("!", "release all"),
        ("n", "launch"),
        ("R", "relaunch"),
    ):
        term.send(key)
        term.wait_for(f"{what} is disabled in read-only mode")
    term.send("q")
    assert term.proc.wait(10) == 0
